//! Contract tests: each states one behaviour of the Kubernetes API that tokend relies on. They run against
//! the emulator, or unchanged against a real cluster when `TOKEND_TEST_KUBECONFIG` names an admin kubeconfig.

use tokend_test_support as common;

use anyhow::{Result, ensure};
use std::time::Duration;

use common::contract::{api_error, decode_jwt, details};
use common::{Cluster, eventually_ok, eventually_some, eventually_within, unique_name};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const INVALID_NAME_MESSAGE: &str = "ServiceAccount \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

fn is_uuid(s: &str) -> bool {
    let lens: Vec<usize> = s.split('-').map(str::len).collect();
    lens == [8, 4, 4, 4, 12] && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_namespaces_exist() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let api: Api<Namespace> = Api::all(c.client.clone());
    for ns in ["default", "kube-system", "kube-public"] {
        let got = api.get(ns).await?;
        ensure!(got.metadata.name.as_deref() == Some(ns));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_service_account_gets_uid_resource_version_and_timestamp() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("crud").await?;
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ns.name);
    let created = api
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "demo", "labels": {"a": "b"}}}))?,
        )
        .await?;
    let meta = &created.metadata;
    ensure!(meta.name.as_deref() == Some("demo"));
    ensure!(meta.namespace.as_deref() == Some(ns.name.as_str()));
    ensure!(
        meta.uid.as_deref().is_some_and(is_uuid),
        "uid {:?}",
        meta.uid
    );
    ensure!(
        meta.resource_version
            .as_deref()
            .is_some_and(|rv| rv.parse::<u64>().is_ok()),
        "resourceVersion {:?}",
        meta.resource_version
    );
    ensure!(meta.creation_timestamp.is_some());
    ensure!(
        meta.labels
            .as_ref()
            .and_then(|l| l.get("a"))
            .map(String::as_str)
            == Some("b")
    );
    let fetched = api.get("demo").await?;
    ensure!(fetched.metadata.uid == created.metadata.uid);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_duplicate_is_409_already_exists() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("dup").await?;
    c.service_account(&ns.name, "demo").await?;
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ns.name);
    let status = api_error(
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "demo"}}))?,
        )
        .await,
    )?;
    ensure!(
        status.code == 409 && status.reason == "AlreadyExists",
        "{status:?}"
    );
    ensure!(
        status.message == "serviceaccounts \"demo\" already exists",
        "{}",
        status.message
    );
    let details = details(&status)?;
    ensure!(details.name == "demo" && details.kind == "serviceaccounts");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_in_a_missing_namespace_is_404_for_the_namespace() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ghost = unique_name("ghost");
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ghost);
    let status = api_error(
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "demo"}}))?,
        )
        .await,
    )?;
    ensure!(
        status.code == 404 && status.reason == "NotFound",
        "{status:?}"
    );
    ensure!(
        status.message == format!("namespaces \"{ghost}\" not found"),
        "{}",
        status.message
    );
    let details = details(&status)?;
    ensure!(details.name == ghost && details.kind == "namespaces");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_name_is_422_invalid_with_the_dns_subdomain_message() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("invalid").await?;
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ns.name);
    let status = api_error(
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "Bad_Name"}}))?,
        )
        .await,
    )?;
    ensure!(
        status.code == 422 && status.reason == "Invalid",
        "{status:?}"
    );
    // Newer servers word the same rule as "a lowercase RFC 1123 subdomain"; the recording is the older wording.
    ensure!(
        status.message == INVALID_NAME_MESSAGE
            || status.message
                == INVALID_NAME_MESSAGE
                    .replace("a DNS-1123 subdomain", "a lowercase RFC 1123 subdomain"),
        "{}",
        status.message
    );
    let details = details(&status)?;
    ensure!(details.name == "Bad_Name" && details.kind == "ServiceAccount");
    ensure!(details.causes.len() == 1 && details.causes[0].field == "metadata.name");
    ensure!(details.causes[0].reason == "FieldValueInvalid");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_account_returns_it_and_then_it_is_404() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("del").await?;
    let created = c.service_account(&ns.name, "demo").await?;
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ns.name);
    let deleted = api.delete("demo", &DeleteParams::default()).await?;
    let gone = deleted
        .left()
        .ok_or_else(|| anyhow::anyhow!("a ServiceAccount delete answers with the object"))?;
    ensure!(gone.metadata.uid == created.metadata.uid);
    let status = api_error(api.get("demo").await)?;
    ensure!(status.code == 404 && status.reason == "NotFound");
    ensure!(
        status.message == "serviceaccounts \"demo\" not found",
        "{}",
        status.message
    );
    let again = api_error(api.delete("demo", &DeleteParams::default()).await)?;
    ensure!(again.code == 404 && again.message == "serviceaccounts \"demo\" not found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_secret_answers_with_a_success_status_or_the_object() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("delsec").await?;
    let created = c.secret(&ns.name, "rec").await?;
    let api: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    let deleted_uid = api
        .delete("rec", &DeleteParams::default())
        .await?
        .either(|s| s.metadata.uid, |status| status.details.map(|d| d.uid));
    ensure!(deleted_uid == created.metadata.uid, "{deleted_uid:?}");
    ensure!(api.get_opt("rec").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_with_a_stale_resource_version_is_409_conflict() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("rv").await?;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns.name);
    let first = api
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "cm"}, "data": {"k": "1"}}))?,
        )
        .await?;
    let mut second = first.clone();
    second.data = Some([("k".to_string(), "2".to_string())].into());
    let replaced = api.replace("cm", &PostParams::default(), &second).await?;
    let old_rv: u64 = first
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default()
        .parse()?;
    let new_rv: u64 = replaced
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default()
        .parse()?;
    ensure!(new_rv > old_rv, "{old_rv} -> {new_rv}");
    ensure!(replaced.metadata.uid == first.metadata.uid);
    let mut stale = first.clone();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let status = api_error(api.replace("cm", &PostParams::default(), &stale).await)?;
    ensure!(
        status.code == 409 && status.reason == "Conflict",
        "{status:?}"
    );
    ensure!(
        status.message
            == "Operation cannot be fulfilled on configmaps \"cm\": the object has been modified; please apply your changes to the latest version and try again",
        "{}",
        status.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_and_strategic_patches_change_labels() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("patch").await?;
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "sa", "labels": {"a": "1", "b": "2"}}}))?,
    )
    .await?;
    let merged = api
        .patch(
            "sa",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": null, "c": "3"}}})),
        )
        .await?;
    let labels = merged.metadata.labels.unwrap_or_default();
    ensure!(!labels.contains_key("a") && labels.get("b").map(String::as_str) == Some("2"));
    ensure!(labels.get("c").map(String::as_str) == Some("3"));
    let strategic = api
        .patch(
            "sa",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"d": "4"}}})),
        )
        .await?;
    let labels = strategic.metadata.labels.unwrap_or_default();
    ensure!(labels.get("d").map(String::as_str) == Some("4") && labels.contains_key("c"));
    let status = api_error(
        api.patch(
            "nope",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await,
    )?;
    ensure!(status.code == 404, "{status:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_by_label_and_field_selectors() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("sel").await?;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns.name);
    for (name, labels) in [
        ("one", json!({"app": "web", "tier": "front"})),
        ("two", json!({"app": "web", "tier": "back"})),
        ("three", json!({"app": "db"})),
        ("four", json!({})),
    ] {
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name, "labels": labels}}))?,
        )
        .await?;
    }
    let names = |sel: &'static str| {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default().labels(sel)).await?;
            let mut names: Vec<String> = list
                .items
                .into_iter()
                .filter_map(|i| i.metadata.name)
                .collect();
            names.sort();
            anyhow::Ok(names)
        }
    };
    ensure!(names("app=web").await? == ["one", "two"]);
    ensure!(names("app==web,tier=back").await? == ["two"]);
    ensure!(
        names("app!=web").await? == ["four", "kube-root-ca.crt", "three"]
            || names("app!=web").await? == ["four", "three"]
    );
    ensure!(names("tier in (front, back)").await? == ["one", "two"]);
    ensure!(names("app,app notin (web)").await? == ["three"]);
    ensure!(names("app").await? == ["one", "three", "two"]);
    ensure!(names("!app").await?.contains(&"four".to_string()));
    ensure!(!names("!app").await?.contains(&"one".to_string()));
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=three"))
        .await?;
    ensure!(by_name.items.len() == 1 && by_name.items[0].metadata.name.as_deref() == Some("three"));
    ensure!(by_name.metadata.resource_version.is_some());
    let status = api_error(api.list(&ListParams::default().labels("a in b")).await)?;
    ensure!(status.code == 400, "{status:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_limit_and_continue_and_answer_metadata_only() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("page").await?;
    let api: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": format!("s{i}"), "labels": {"paged": "yes"}},
                "type": "example.com/paged",
                "stringData": {"payload": "x".repeat(1000)},
            }))?,
        )
        .await?;
    }
    // Pages of 2 (label and type selected on the server), metadata only: 2 + 2 + 1, each
    // object once, and a continue token on every page but the last.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = ListParams::default()
            .labels("paged=yes")
            .fields("type=example.com/paged")
            .limit(2);
        if let Some(token) = &next {
            params = params.continue_token(token);
        }
        let page = api.list_metadata(&params).await?;
        pages += 1;
        ensure!(page.items.len() <= 2, "a page holds at most limit");
        seen.extend(page.items.into_iter().filter_map(|i| i.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                // Go's RawURLEncoding (unpadded, URL-safe) of JSON naming the version, as
                // apiserver's storage.EncodeContinue writes it: anyone can read and remake it.
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token)?;
                let value: serde_json::Value = serde_json::from_slice(&bytes)?;
                ensure!(value["v"] == "meta.k8s.io/v1", "{value}");
                next = Some(token);
            }
            None => break,
        }
        ensure!(pages < 10, "paging ends");
    }
    seen.sort();
    ensure!(seen == ["s0", "s1", "s2", "s3", "s4"], "{seen:?}");
    ensure!(pages == 3, "{pages} pages");
    let one = api.get_metadata("s0").await?;
    ensure!(
        one.metadata
            .labels
            .unwrap_or_default()
            .get("paged")
            .map(String::as_str)
            == Some("yes")
    );
    // A continue token that is not the server's is 400.
    let status = api_error(
        api.list_metadata(&ListParams::default().limit(2).continue_token("garbage"))
            .await,
    )?;
    ensure!(status.code == 400, "{status:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_secret_keeps_its_data_but_not_its_labels() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("immutable").await?;
    let api: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &obj(
            json!({"metadata": {"name": "fixed", "labels": {"a": "1"}}, "stringData": {"k": "v"}}),
        )?,
    )
    .await?;
    let seal = json!({"metadata": {"labels": {"a": null}}, "immutable": true});
    api.patch("fixed", &PatchParams::default(), &Patch::Merge(&seal))
        .await?;
    // Metadata still changes,
    let relabel = json!({"metadata": {"labels": {"b": "2"}}});
    api.patch("fixed", &PatchParams::default(), &Patch::Merge(&relabel))
        .await?;
    // but neither the data nor immutability itself.
    for change in [
        json!({"data": {"k": "d3Jvbmc="}}),
        json!({"immutable": false}),
    ] {
        let status = api_error(
            api.patch("fixed", &PatchParams::default(), &Patch::Merge(&change))
                .await,
        )?;
        ensure!(status.code == 422, "{status:?}");
        ensure!(
            status
                .message
                .contains("field is immutable when `immutable` is set"),
            "{status:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_keep_their_type_and_string_data_becomes_data() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("sec").await?;
    let api: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    let created = api
        .create(
            &PostParams::default(),
            &obj(
                json!({"metadata": {"name": "rec", "labels": {"tokend.io/token": "true"}},
                        "type": "tokend.io/token-record",
                        "stringData": {"issuer": "alice"}, "data": {"raw": "AQI="}}),
            )?,
        )
        .await?;
    ensure!(created.type_.as_deref() == Some("tokend.io/token-record"));
    ensure!(created.string_data.is_none());
    let data = created.data.unwrap_or_default();
    ensure!(data.get("issuer").map(|b| b.0.as_slice()) == Some(b"alice".as_slice()));
    ensure!(data.get("raw").map(|b| b.0.as_slice()) == Some([1u8, 2].as_slice()));
    let empty = Api::<Secret>::namespaced(c.client.clone(), &ns.name)
        .list(&ListParams::default().labels("tokend.io/token=false"))
        .await?;
    ensure!(empty.items.is_empty());
    let listed = api
        .list(&ListParams::default().labels("tokend.io/token"))
        .await?;
    ensure!(listed.items.len() == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_namespace_gets_the_root_ca_config_map() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let has_publisher = Api::<ConfigMap>::namespaced(c.client.clone(), "default")
        .get_opt("kube-root-ca.crt")
        .await?
        .is_some();
    if !has_publisher {
        println!(
            "skipping: this cluster publishes no kube-root-ca.crt (no kube-controller-manager)"
        );
        return Ok(());
    }
    let ns = c.namespace("rootca").await?;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns.name);
    eventually_ok("kube-root-ca.crt appears", || async {
        Ok(api
            .get_opt("kube-root-ca.crt")
            .await?
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("ca.crt").cloned())
            .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE")))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_what_is_in_it() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("nsdel").await?;
    c.service_account(&ns.name, "demo").await?;
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    namespaces
        .delete(&ns.name, &DeleteParams::default())
        .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ns.name);
    // A real cluster's namespace controller empties a Terminating namespace in the background.
    eventually_within(
        "the namespace's ServiceAccount is gone",
        Duration::from_secs(60),
        || async { Ok(sas.get_opt("demo").await?.is_none()) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_issues_an_rs256_jwt_bound_to_a_secret() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("tok").await?;
    let sa = c.service_account(&ns.name, "demo").await?;
    let secret = c.secret(&ns.name, "bind").await?;
    let secret_uid = secret.metadata.uid.clone().unwrap_or_default();
    let before = chrono_now();
    let tr = c
        .token_request(&ns.name, "demo", json!({"audiences": null, "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "bind", "uid": secret_uid}}))
        .await?;
    let status = tr.status.ok_or_else(|| anyhow::anyhow!("no status"))?;
    let (header, claims) = decode_jwt(status.token.as_deref().unwrap_or(""))?;
    ensure!(header["alg"] == "RS256", "{header}");
    ensure!(header.get("kid").is_some(), "{header}");
    ensure!(claims["sub"] == format!("system:serviceaccount:{}:demo", ns.name));
    ensure!(
        claims["aud"].as_array().is_some_and(|a| !a.is_empty()),
        "{claims}"
    );
    if let Some(e) = &c.emulator {
        ensure!(claims["iss"] == e.issuer() && claims["aud"] == json!([e.issuer()]));
    }
    let (iat, exp, nbf) = (
        claims["iat"].as_i64(),
        claims["exp"].as_i64(),
        claims["nbf"].as_i64(),
    );
    let (Some(iat), Some(exp), Some(nbf)) = (iat, exp, nbf) else {
        anyhow::bail!("missing times in {claims}");
    };
    ensure!(
        exp - iat == 3600 && nbf == iat && (iat - before).abs() < 60,
        "{claims}"
    );
    let k = &claims["kubernetes.io"];
    ensure!(k["namespace"] == ns.name.as_str());
    ensure!(k["serviceaccount"] == json!({"name": "demo", "uid": sa.metadata.uid}));
    ensure!(k["secret"] == json!({"name": "bind", "uid": secret_uid}));
    let expires = status
        .expiration_timestamp
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    ensure!((expires - exp).abs() <= 1, "status {expires} vs exp {exp}");
    ensure!(tr.spec.as_ref().and_then(|s| s.expiration_seconds) == Some(3600));
    Ok(())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_defaults_to_one_hour() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("tokdef").await?;
    c.service_account(&ns.name, "demo").await?;
    let tr = c
        .token_request(&ns.name, "demo", json!({"audiences": ["tokend"]}))
        .await?;
    ensure!(tr.spec.as_ref().and_then(|s| s.expiration_seconds) == Some(3600));
    let (_, claims) = decode_jwt(&tr.status.and_then(|s| s.token).unwrap_or_default())?;
    ensure!(claims["aud"] == json!(["tokend"]));
    ensure!(claims["kubernetes.io"].get("secret").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_errors_match_the_real_server() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("tokerr").await?;
    c.service_account(&ns.name, "demo").await?;
    let secret = c.secret(&ns.name, "bind").await?;
    c.service_account(&ns.name, "cmholder").await?;

    let short = api_error(
        c.token_request(
            &ns.name,
            "demo",
            json!({"audiences": [], "expirationSeconds": 300}),
        )
        .await,
    )?;
    ensure!(short.code == 422 && short.reason == "Invalid", "{short:?}");
    ensure!(
        short.message
            == "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes",
        "{}",
        short.message
    );
    let d = details(&short)?;
    ensure!(d.group == "authentication.k8s.io" && d.kind == "TokenRequest");
    ensure!(d.causes.first().map(|c| c.field.as_str()) == Some("spec.expirationSeconds"));

    let missing_secret = api_error(
        c.token_request(
            &ns.name,
            "demo",
            json!({"audiences": [],
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "nope"}}),
        )
        .await,
    )?;
    ensure!(
        missing_secret.code == 404 && missing_secret.message == "secrets \"nope\" not found",
        "{missing_secret:?}"
    );

    let mismatch = api_error(
        c.token_request(&ns.name, "demo", json!({"audiences": [],
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "bind", "uid": "123"}}))
            .await,
    )?;
    ensure!(
        mismatch.code == 409 && mismatch.reason == "Conflict",
        "{mismatch:?}"
    );
    ensure!(
        mismatch.message
            == "Operation cannot be fulfilled on Secret \"bind\": the UID in the bound object reference (123) does not match the UID in record. The object might have been deleted and then recreated",
        "{}",
        mismatch.message
    );
    ensure!(secret.metadata.uid.as_deref() != Some("123"));

    let bad_kind = api_error(
        c.token_request(&ns.name, "demo", json!({"audiences": [],
            "boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "kube-root-ca.crt"}}))
            .await,
    )?;
    ensure!(
        bad_kind.code == 400 && bad_kind.reason == "BadRequest",
        "{bad_kind:?}"
    );
    ensure!(
        bad_kind.message == "cannot bind token to object of type /v1, Kind=ConfigMap",
        "{}",
        bad_kind.message
    );

    let no_sa = api_error(
        c.token_request(&ns.name, "ghost", json!({"audiences": []}))
            .await,
    )?;
    ensure!(
        no_sa.code == 404 && no_sa.message == "serviceaccounts \"ghost\" not found",
        "{no_sa:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_authenticates_a_valid_token() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("trv").await?;
    let bound = c.bound_token(&ns.name, "demo", "bind").await?;
    let review = c.review(&bound.token, None).await?;
    ensure!(review["kind"] == "TokenReview", "{review}");
    let status = &review["status"];
    ensure!(status["authenticated"] == true, "{review}");
    ensure!(status["user"]["username"] == format!("system:serviceaccount:{}:demo", ns.name));
    ensure!(status["user"]["uid"] == bound.sa_uid.as_str());
    let groups = status["user"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for g in [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{}", ns.name),
        "system:authenticated".into(),
    ] {
        ensure!(
            groups.contains(&Value::String(g.clone())),
            "{g} missing in {groups:?}"
        );
    }
    ensure!(
        status["audiences"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{review}"
    );
    ensure!(status.get("error").is_none_or(|e| e == ""), "{review}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_rejects_a_token_whose_bound_secret_was_deleted() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("trrev").await?;
    let bound = c.bound_token(&ns.name, "demo", "bind").await?;
    Api::<Secret>::namespaced(c.client.clone(), &ns.name)
        .delete("bind", &DeleteParams::default())
        .await?;
    let last = eventually_some("the revoked token is rejected", || async {
        let review = c.review(&bound.token, None).await?;
        let rejected = review["status"]
            .get("authenticated")
            .is_none_or(|a| a == false);
        Ok(rejected.then_some(review))
    })
    .await?;
    let status = &last["status"];
    let error = status["error"].as_str().unwrap_or("");
    ensure!(
        error.starts_with("[invalid bearer token, ")
            && error.to_lowercase().contains("invalidated"),
        "{last}"
    );
    ensure!(status["user"] == json!({}), "{last}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_of_garbage_is_invalid_bearer_token() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let review = c.review("garbage", None).await?;
    ensure!(
        review["status"]
            .get("authenticated")
            .is_none_or(|a| a == false),
        "{review}"
    );
    ensure!(
        review["status"]["error"] == "invalid bearer token",
        "{review}"
    );
    ensure!(review["status"]["user"] == json!({}), "{review}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_rejects_a_token_for_another_audience() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("traud").await?;
    let bound = c.bound_token(&ns.name, "demo", "bind").await?;
    let (_, claims) = decode_jwt(&bound.token)?;
    let review = c.review(&bound.token, Some(&["other"])).await?;
    ensure!(
        review["status"]
            .get("authenticated")
            .is_none_or(|a| a == false),
        "{review}"
    );
    let token_auds: Vec<String> = claims["aud"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(|s| format!("{s:?}")))
        .collect();
    let expected = format!(
        "[invalid bearer token, token audiences [{}] is invalid for the target audiences [\"other\"]]",
        token_auds.join(" ")
    );
    ensure!(
        review["status"]["error"] == expected.as_str(),
        "{review}\nexpected {expected}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_accepts_a_token_for_a_requested_custom_audience() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("trcust").await?;
    c.service_account(&ns.name, "demo").await?;
    let tr = c
        .token_request(&ns.name, "demo", json!({"audiences": ["tokend", "x"]}))
        .await?;
    let token = tr.status.and_then(|s| s.token).unwrap_or_default();
    let review = c.review(&token, Some(&["tokend"])).await?;
    ensure!(review["status"]["authenticated"] == true, "{review}");
    ensure!(
        review["status"]["audiences"] == json!(["tokend"]),
        "{review}"
    );
    Ok(())
}

async fn bind_token_role(c: &Cluster, ns: &str, resource_names: Option<Vec<&str>>) -> Result<()> {
    let mut rule =
        json!({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]});
    if let Some(names) = resource_names {
        rule["resourceNames"] = json!(names);
    }
    Api::<Role>::namespaced(c.client.clone(), ns)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "tok"}, "rules": [rule]}))?,
        )
        .await?;
    Api::<RoleBinding>::namespaced(c.client.clone(), ns)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "tok"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tok"},
                "subjects": [{"kind": "ServiceAccount", "name": "demo", "namespace": ns}]}))?,
        )
        .await?;
    Ok(())
}

fn sa_groups(ns: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{ns}"),
        "system:authenticated".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_review_allows_the_token_subresource_by_resource_name() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("sar").await?;
    bind_token_role(&c, &ns.name, Some(vec!["demo"])).await?;
    let user = format!("system:serviceaccount:{}:demo", ns.name);
    let groups = sa_groups(&ns.name);
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let attrs = |name: &str, sub: &str| json!({"namespace": ns.name, "verb": "create", "resource": "serviceaccounts", "subresource": sub, "name": name});
    let allowed = eventually_some("the RoleBinding takes effect", || async {
        let status = c
            .access_review(&user, &groups, attrs("demo", "token"))
            .await?;
        Ok((status["allowed"] == true).then_some(status))
    })
    .await?;
    let expected = format!(
        "RBAC: allowed by RoleBinding \"tok/{0}\" of Role \"tok\" to ServiceAccount \"demo/{0}\"",
        ns.name
    );
    ensure!(allowed["reason"] == expected.as_str(), "{allowed}");

    let other_name = c
        .access_review(&user, &groups, attrs("other", "token"))
        .await?;
    ensure!(other_name["allowed"] == false, "{other_name}");
    let no_sub = c.access_review(&user, &groups, attrs("demo", "")).await?;
    ensure!(no_sub["allowed"] == false, "{no_sub}");
    let elsewhere = c
        .access_review(&user, &groups, json!({"namespace": "default", "verb": "create", "resource": "serviceaccounts", "subresource": "token", "name": "demo"}))
        .await?;
    ensure!(elsewhere["allowed"] == false, "{elsewhere}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_review_denies_without_a_binding() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("sard").await?;
    let user = format!("system:serviceaccount:{}:demo", ns.name);
    let groups = sa_groups(&ns.name);
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let body = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes":
            {"namespace": ns.name, "verb": "create", "resource": "serviceaccounts", "subresource": "token", "name": "demo"}},
    });
    let answer = c
        .post(
            &c.client,
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body,
        )
        .await?;
    ensure!(answer["kind"] == "SubjectAccessReview", "{answer}");
    ensure!(answer["status"]["allowed"] == false, "{answer}");
    ensure!(answer["spec"]["user"] == user.as_str(), "{answer}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_review_follows_cluster_role_bindings_for_users_and_groups() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let user = unique_name("user");
    let binding = unique_name("tokend-test");
    let crbs: Api<ClusterRoleBinding> = Api::all(c.client.clone());
    crbs.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]}))?,
    )
    .await?;
    let result = async {
        let attrs = json!({"namespace": "default", "verb": "list", "resource": "serviceaccounts"});
        let status = eventually_some("the ClusterRoleBinding takes effect", || async {
            let status = c.access_review(&user, &[], attrs.clone()).await?;
            Ok((status["allowed"] == true).then_some(status))
        })
        .await?;
        let expected = format!("RBAC: allowed by ClusterRoleBinding \"{binding}\" of ClusterRole \"view\" to User \"{user}\"");
        ensure!(status["reason"] == expected.as_str(), "{status}");
        let secrets = c
            .access_review(&user, &[], json!({"namespace": "default", "verb": "get", "resource": "secrets"}))
            .await?;
        ensure!(secrets["allowed"] == false, "view must not read secrets: {secrets}");
        let masters = c
            .access_review("someone", &["system:masters"], json!({"namespace": "x", "verb": "delete", "resource": "secrets"}))
            .await?;
        ensure!(masters["allowed"] == true, "{masters}");
        Ok(())
    }
    .await;
    crbs.delete(&binding, &DeleteParams::default()).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_credentials_is_forbidden_as_anonymous() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let anonymous = c.anonymous_client()?;
    let req = http::Request::get("/api/v1/namespaces/default/pods").body(Vec::new())?;
    let (code, body) = c.raw(&anonymous, req).await?;
    ensure!(code == 403, "{code} {body}");
    ensure!(
        body == json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
            "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403}),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_an_invalid_token_is_401() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let stranger = c.client_with_token("not-a-token")?;
    let req = http::Request::get("/api/v1/namespaces/default/serviceaccounts").body(Vec::new())?;
    let (code, body) = c.raw(&stranger, req).await?;
    ensure!(code == 401, "{code} {body}");
    ensure!(
        body == json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_revoked_token_is_401() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("rev401").await?;
    let bound = c.bound_token(&ns.name, "demo", "bind").await?;
    let holder = c.client_with_token(&bound.token)?;
    let status_of = |client: kube::Client, path: String| async move {
        let req = http::Request::get(path).body(Vec::new())?;
        let resp = client.send(req.map(kube::client::Body::from)).await?;
        anyhow::Ok(resp.status().as_u16())
    };
    let path = format!("/api/v1/namespaces/{}/serviceaccounts", ns.name);
    let before = status_of(holder.clone(), path.clone()).await?;
    ensure!(
        before == 403,
        "an authenticated but unauthorised token is 403, got {before}"
    );
    Api::<Secret>::namespaced(c.client.clone(), &ns.name)
        .delete("bind", &DeleteParams::default())
        .await?;
    eventually_ok("the revoked token is refused", || {
        let fut = status_of(holder.clone(), path.clone());
        async move { Ok(fut.await? == 401) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_token_can_list_with_the_view_role_but_not_create() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let ns = c.namespace("view").await?;
    let bound = c.bound_token(&ns.name, "demo", "bind").await?;
    Api::<RoleBinding>::namespaced(c.client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "demo-view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "demo", "namespace": ns.name}]}))?,
        )
        .await?;
    let holder = c.client_with_token(&bound.token)?;
    let api: Api<ServiceAccount> = Api::namespaced(holder.clone(), &ns.name);
    eventually_ok("the view binding lets the token list", || async {
        Ok(api.list(&ListParams::default()).await.is_ok())
    })
    .await?;
    let listed = api.list(&ListParams::default()).await?;
    ensure!(
        listed
            .items
            .iter()
            .any(|sa| sa.metadata.name.as_deref() == Some("demo"))
    );
    let status = api_error(
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "new"}}))?,
        )
        .await,
    )?;
    ensure!(
        status.code == 403 && status.reason == "Forbidden",
        "{status:?}"
    );
    ensure!(
        status.message
            == format!(
                "serviceaccounts is forbidden: User \"system:serviceaccount:{0}:demo\" cannot create resource \"serviceaccounts\" in API group \"\" in the namespace \"{0}\"",
                ns.name
            ),
        "{}",
        status.message
    );
    let secrets = api_error(
        Api::<Secret>::namespaced(holder.clone(), &ns.name)
            .list(&ListParams::default())
            .await,
    )?;
    ensure!(secrets.code == 403, "{secrets:?}");

    let ssar = c
        .post(
            &holder,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": ns.name, "verb": "create", "resource": "serviceaccounts"}}}),
        )
        .await?;
    ensure!(ssar["status"]["allowed"] == false, "{ssar}");
    let ssar = c
        .post(
            &holder,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": ns.name, "verb": "list", "resource": "serviceaccounts"}}}),
        )
        .await?;
    ensure!(ssar["status"]["allowed"] == true, "{ssar}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_credentials_review_as_an_authenticated_user() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let Some(token) = c.emulator.as_ref().map(|e| e.admin_token().to_string()) else {
        println!(
            "skipping the admin-token review: a real cluster's admin credentials need not be a token"
        );
        return Ok(());
    };
    let review = c.review(&token, None).await?;
    ensure!(review["status"]["authenticated"] == true, "{review}");
    ensure!(review["status"]["user"]["username"] == "admin", "{review}");
    let groups = review["status"]["user"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(groups.contains(&json!("system:masters")), "{review}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_serves_the_resources_tokend_uses() -> Result<()> {
    let c = Cluster::connect_with(kube_emulator::Options::default()).await?;
    let version = c.client.apiserver_version().await?;
    ensure!(version.git_version.starts_with("v1."), "{version:?}");
    let discovery = kube::Discovery::new(c.client.clone())
        .filter(&["", "rbac.authorization.k8s.io", "coordination.k8s.io"])
        .run()
        .await?;
    for (group, kind) in [
        ("", "ServiceAccount"),
        ("", "Secret"),
        ("", "Namespace"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("coordination.k8s.io", "Lease"),
    ] {
        let found = discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.recommended_resources())
            .any(|(ar, _)| ar.kind == kind);
        ensure!(found, "{group}/{kind} not discovered");
    }
    let req = http::Request::get("/healthz").body(Vec::new())?;
    let text = c.client.request_text(req).await?;
    ensure!(text == "ok", "{text}");
    Ok(())
}
