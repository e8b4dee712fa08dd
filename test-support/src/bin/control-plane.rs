//! `control-plane`: runs a loopback Kubernetes control plane for a whole test run
//! (`scripts/test --real`), and checks afterwards that the run left nothing behind.
//!
//! - `control-plane run --kubeconfig-out FILE` starts etcd, kube-apiserver and
//!   kube-controller-manager, writes the admin kubeconfig, and stops them on SIGTERM, SIGINT or
//!   when its standard input closes.
//! - `control-plane snapshot --kubeconfig FILE --out FILE` records the cluster-scoped objects a
//!   suite may create (namespaces, ClusterRoles, ClusterRoleBindings).
//! - `control-plane leaks --kubeconfig FILE --before FILE` lists those that are new since the
//!   snapshot, and namespaces still Terminating after [`TERMINATING_LIMIT`] (deleted but held by
//!   a finalizer nobody removes), and exits 1 when there are any.
//! - `control-plane load --kubeconfig FILE` keeps the API server busy (objects and namespaces
//!   created, listed and deleted) until its standard input closes or SIGTERM, then deletes what
//!   it made, waits until it is gone, and prints what it did.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokend_test_support::control_plane::{ControlPlane, write_atomically};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Result<PathBuf> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .with_context(|| format!("{name} FILE is required"))
    };
    match args.first().map(String::as_str) {
        Some("run") => run(&flag("--kubeconfig-out")?).await,
        Some("snapshot") => {
            let objects = cluster_objects(&flag("--kubeconfig")?).await?;
            let text = objects.into_iter().collect::<Vec<_>>().join("\n");
            std::fs::write(flag("--out")?, text)?;
            Ok(())
        }
        Some("leaks") => leaks(&flag("--kubeconfig")?, &flag("--before")?).await,
        Some("load") => load(&flag("--kubeconfig")?).await,
        _ => bail!(
            "usage: control-plane run --kubeconfig-out FILE | snapshot --kubeconfig FILE --out FILE \
             | leaks --kubeconfig FILE --before FILE | load --kubeconfig FILE"
        ),
    }
}

async fn run(kubeconfig_out: &Path) -> Result<()> {
    let started = std::time::Instant::now();
    let plane = ControlPlane::start().await?;
    let kubeconfig = std::fs::read(plane.kubeconfig())?;
    write_atomically(kubeconfig_out, &kubeconfig)?;
    eprintln!(
        "control plane ready at {} in {:.1}s (logs in {})",
        plane.url(),
        started.elapsed().as_secs_f64(),
        plane.dir().display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = stdin_closed => {}
    }
    drop(plane);
    Ok(())
}

async fn load(kubeconfig: &Path) -> Result<()> {
    let client = client(kubeconfig).await?;
    let started = std::time::Instant::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    let stop = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = stdin_closed => {}
        }
    };
    let report = tokend_test_support::api_load::run(client, stop).await?;
    eprintln!(
        "background load: {} API calls ({} failed), {} namespaces created and deleted, over {:.0}s; \
         all of it cleaned up",
        report.calls,
        report.failures,
        report.namespaces,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let parsed = Kubeconfig::read_from(kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// `kind/name` of every namespace, ClusterRole and ClusterRoleBinding not being deleted.
async fn cluster_objects(kubeconfig: &Path) -> Result<BTreeSet<String>> {
    let client = client(kubeconfig).await?;
    let lp = ListParams::default();
    let mut out = BTreeSet::new();
    for ns in Api::<Namespace>::all(client.clone())
        .list_metadata(&lp)
        .await?
    {
        if ns.metadata.deletion_timestamp.is_none() {
            out.insert(format!(
                "namespace/{}",
                ns.metadata.name.unwrap_or_default()
            ));
        }
    }
    for role in Api::<ClusterRole>::all(client.clone())
        .list_metadata(&lp)
        .await?
    {
        if role.metadata.deletion_timestamp.is_none() {
            out.insert(format!(
                "clusterrole/{}",
                role.metadata.name.unwrap_or_default()
            ));
        }
    }
    for binding in Api::<ClusterRoleBinding>::all(client)
        .list_metadata(&lp)
        .await?
    {
        if binding.metadata.deletion_timestamp.is_none() {
            out.insert(format!(
                "clusterrolebinding/{}",
                binding.metadata.name.unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

/// How long namespaces the suite deleted last may take to go (the namespace controller empties
/// them; the garbage collector is asynchronous) before they count as stuck.
const TERMINATING_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

async fn leaks(kubeconfig: &Path, before: &Path) -> Result<()> {
    let before: BTreeSet<String> = std::fs::read_to_string(before)?
        .lines()
        .map(str::to_owned)
        .collect();
    let after = cluster_objects(kubeconfig).await?;
    let mut leaked: Vec<String> = after.difference(&before).cloned().collect();
    // A namespace being deleted is no leak while it goes; one still Terminating after the limit
    // is held by a finalizer nobody will remove, and so is one.
    let deadline = std::time::Instant::now() + TERMINATING_LIMIT;
    let stuck = loop {
        let terminating = terminating_namespaces(kubeconfig).await?;
        if terminating.is_empty() || std::time::Instant::now() >= deadline {
            break terminating;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    leaked.extend(stuck);
    if leaked.is_empty() {
        println!(
            "no namespace (live or Terminating), ClusterRole or ClusterRoleBinding left behind by \
             the suite"
        );
        return Ok(());
    }
    println!("left behind by the suite ({}):", leaked.len());
    for object in &leaked {
        println!("  {object}");
    }
    std::process::exit(1);
}

/// `namespace/NAME Terminating: WHY` for each namespace being deleted, with what holds it (the
/// namespace controller's conditions, e.g. finalizers remaining on its content).
async fn terminating_namespaces(kubeconfig: &Path) -> Result<Vec<String>> {
    let client = client(kubeconfig).await?;
    let mut out = Vec::new();
    for ns in Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await?
    {
        if ns.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let why: Vec<String> = ns
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.status == "True")
            .map(|c| c.message.unwrap_or(c.type_))
            .collect();
        out.push(format!(
            "namespace/{} Terminating: {}",
            ns.metadata.name.unwrap_or_default(),
            why.join("; ")
        ));
    }
    Ok(out)
}
