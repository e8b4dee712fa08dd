//! kubectl against the cluster: the admin kubeconfig works for the commands people run by hand.

use tokend_test_support as common;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use common::{Cluster, SkipKind, skip, unique_name};

/// Runs kubectl with the given kubeconfig and a private cache dir; returns stdout, failing on a non-zero exit.
fn kubectl(bin: &Path, kubeconfig: &Path, cache: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .with_context(|| format!("running kubectl {args:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!(
            "kubectl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
    }
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_can_list_create_issue_tokens_and_ask_can_i() -> Result<()> {
    let Some(bin) = common::find_on_path("kubectl") else {
        skip(
            "kubectl_can_list_create_issue_tokens_and_ask_can_i",
            SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
        return Ok(());
    };
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = c.admin_kubeconfig.clone();
    let cache = dir.path().join("cache");
    let ns = c.namespace("kubectl").await?;
    let sa = unique_name("sa");
    let run = |args: &[&str]| kubectl(&bin, &kubeconfig, &cache, args);

    let namespaces = tokio::task::block_in_place(|| run(&["get", "ns"]))?;
    println!("kubectl get ns:\n{namespaces}");
    ensure!(
        namespaces.contains("default") && namespaces.contains(&ns.name),
        "{namespaces}"
    );

    let created =
        tokio::task::block_in_place(|| run(&["create", "serviceaccount", &sa, "-n", &ns.name]))?;
    ensure!(created.contains(&sa), "{created}");

    let token = tokio::task::block_in_place(|| {
        run(&["create", "token", &sa, "-n", &ns.name, "--duration=1h"])
    })?;
    let (_, claims) = common::contract::decode_jwt(token.trim())?;
    ensure!(
        claims["sub"] == format!("system:serviceaccount:{}:{sa}", ns.name),
        "{claims}"
    );

    let can_i = tokio::task::block_in_place(|| {
        run(&["auth", "can-i", "create", "secrets", "-n", &ns.name])
    })?;
    ensure!(can_i.trim() == "yes", "{can_i}");

    let sas = tokio::task::block_in_place(|| run(&["get", "sa", "-n", &ns.name, "-o", "name"]))?;
    ensure!(sas.contains(&format!("serviceaccount/{sa}")), "{sas}");

    let secret = tokio::task::block_in_place(|| {
        run(&[
            "create",
            "secret",
            "generic",
            "lit",
            "-n",
            &ns.name,
            "--from-literal=k=v",
        ])
    })?;
    ensure!(secret.contains("lit"), "{secret}");
    let binding = tokio::task::block_in_place(|| {
        run(&[
            "create",
            "rolebinding",
            "rb",
            "-n",
            &ns.name,
            "--clusterrole=view",
            &format!("--serviceaccount={}:{sa}", ns.name),
        ])
    })?;
    ensure!(binding.contains("rb"), "{binding}");

    let manifest = dir.path().join("cm.yaml");
    for value in ["one", "two"] {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {}\ndata:\n  k: {value}\n",
                ns.name
            ),
        )?;
        let applied =
            tokio::task::block_in_place(|| run(&["apply", "-f", &manifest.to_string_lossy()]))?;
        ensure!(applied.contains("applied"), "{applied}");
    }
    let value = tokio::task::block_in_place(|| {
        run(&[
            "get",
            "cm",
            "applied",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.data.k}",
        ])
    })?;
    ensure!(value == "two", "{value}");

    let deleted = tokio::task::block_in_place(|| run(&["delete", "sa", &sa, "-n", &ns.name]))?;
    ensure!(deleted.contains("deleted"), "{deleted}");
    Ok(())
}
