//! The mutating admission webhook for ServiceAccountTokens, served over HTTPS: on CREATE it
//! stamps the API server's record of who asks (`request.userInfo`) into `spec.requester` and
//! refuses an object whose author wrote one; on UPDATE it refuses a change of `spec.requester`,
//! and an update that changes the rest of the spec is stamped with the updater instead. Each
//! stamp is sealed with tokend's record key ([`super::requester`]) so the controller can tell it
//! from one written by hand where no webhook is registered.
//! As cert-manager does for CertificateRequests: the requester's identity comes from the API
//! server, never from the object's author.

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use tokio::net::TcpListener;

use k8s_openapi::jiff::Timestamp;

use super::requester;
use super::resource::{Requester, ServiceAccountTokenSpec};
use crate::server::listener::{ConnectionBounds, HttpTimeouts, serve_http};
use crate::server::tls::{ReloadingTls, TlsError, TlsFiles};
use crate::service::{RecordKey, TokenService};

/// Path the webhook is served at (the MutatingWebhookConfiguration names it).
pub const PATH: &str = "/mutate-serviceaccounttokens";

/// Loads the webhook's certificate (HTTP/2 and HTTP/1.1 offered: API servers' webhook clients
/// may speak either); fails at start when the files are unusable.
pub fn load_tls(files: TlsFiles) -> Result<ReloadingTls, TlsError> {
    ReloadingTls::load_with_alpn(files, vec![b"h2".to_vec(), b"http/1.1".to_vec()])
}

/// Serves the webhook on `listener` with `tls` (its files re-read every `reload_interval`)
/// until `shutdown` resolves; `service` holds the record key requesters are sealed with. Its
/// only expected client is the API server: `bounds` and `timeouts` keep what anyone else can hold
/// small, so a few clients holding connections open cannot make the API server's calls wait (and
/// ServiceAccountToken writes fail).
pub async fn serve(
    service: TokenService,
    listener: TcpListener,
    tls: ReloadingTls,
    reload_interval: Duration,
    bounds: ConnectionBounds,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send,
) {
    let reloader = tokio::spawn(tls.clone().watch(reload_interval));
    let router = axum::Router::new()
        .route(PATH, post(mutate))
        .with_state(service);
    let incoming = tls.incoming(listener, bounds);
    serve_http(incoming, router, timeouts, shutdown).await;
    reloader.abort();
}

async fn mutate(
    State(service): State<TokenService>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let answer = match service.record_key().await {
        Ok(key) => decide(&request, key, Timestamp::now()),
        // Without the key nothing can be sealed; an unsealed stamp would be refused later.
        Err(e) => AdmissionResponse::from(&request)
            .deny(format!("tokend cannot seal spec.requester: {e}")),
    };
    Json(answer.into_review())
}

/// The webhook's answer to one admission request, sealing with `key` at `now`.
pub fn decide(
    request: &AdmissionRequest<DynamicObject>,
    key: &RecordKey,
    now: Timestamp,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let requester_of = |object: &Option<DynamicObject>| {
        object
            .as_ref()
            .and_then(|o| o.data.get("spec"))
            .and_then(|spec| spec.get("requester"))
            .filter(|r| !r.is_null())
            .cloned()
    };
    match request.operation {
        Operation::Create => {
            if requester_of(&request.object).is_some() {
                return response.deny(
                    "spec.requester is set by tokend's admission webhook from the API server's \
                     record of who creates the object; remove it",
                );
            }
            stamp(request, response, "add", key, now)
        }
        Operation::Update => {
            if requester_of(&request.object) != requester_of(&request.old_object) {
                return response.deny("spec.requester cannot be changed");
            }
            // Whoever changes what is asked for becomes the requester: otherwise someone allowed
            // to edit the object could have tokend grant, on the creator's rights, a role or
            // ServiceAccount the editor could not get.
            let without_requester = |object: &Option<DynamicObject>| {
                let mut spec = object
                    .as_ref()
                    .and_then(|o| o.data.get("spec"))
                    .cloned()
                    .unwrap_or_default();
                if let Some(map) = spec.as_object_mut() {
                    map.remove("requester");
                }
                spec
            };
            if without_requester(&request.object) != without_requester(&request.old_object) {
                let op = if requester_of(&request.object).is_some() {
                    "replace"
                } else {
                    "add"
                };
                return stamp(request, response, op, key, now);
            }
            response
        }
        _ => response,
    }
}

/// Writes the admission request's user into `spec.requester` with JSON patch operation `op`,
/// sealed with `key` for the object as the API server will store it.
fn stamp(
    request: &AdmissionRequest<DynamicObject>,
    response: AdmissionResponse,
    op: &str,
    key: &RecordKey,
    now: Timestamp,
) -> AdmissionResponse {
    let user = &request.user_info;
    let mut requester = Requester {
        username: user.username.clone().unwrap_or_default(),
        uid: user.uid.clone().unwrap_or_default(),
        groups: user.groups.clone().unwrap_or_default(),
        extra: user.extra.clone().unwrap_or_default(),
        seal: String::new(),
    };
    let object = request.object.as_ref();
    // The name must be known now: generateName is only turned into one after admission.
    let name = object
        .and_then(|o| o.metadata.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| request.name.clone());
    if name.is_empty() {
        return response.deny(
            "metadata.name: required (generateName is not supported: tokend seals              spec.requester to the object's name, which generateName sets after admission)",
        );
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    let mut spec: ServiceAccountTokenSpec = match object.and_then(|o| o.data.get("spec")) {
        Some(value) => match serde_json::from_value(value.clone()) {
            Ok(spec) => spec,
            Err(e) => return response.deny(format!("spec: cannot be read: {e}")),
        },
        None => ServiceAccountTokenSpec::default(),
    };
    // What the API server will set after admission: generation 1 and "now" for a CREATE; for an
    // UPDATE changing the spec, the old generation + 1 and the old creation time.
    let (generation, anchor) = match request.operation {
        Operation::Create => (1, now.as_second()),
        _ => {
            let old = request.old_object.as_ref().map(|o| &o.metadata);
            match (
                old.and_then(|m| m.generation),
                old.and_then(|m| m.creation_timestamp.as_ref()),
            ) {
                (Some(generation), Some(created)) => (generation + 1, created.0.as_second()),
                _ => {
                    return response
                        .deny("the stored object has no generation or creation time to seal");
                }
            }
        }
    };
    spec.requester = Some(requester.clone());
    requester.seal = requester::seal(key, &namespace, &name, generation, anchor, &spec);
    let has_spec = request
        .object
        .as_ref()
        .and_then(|o| o.data.get("spec"))
        .is_some_and(|s| s.is_object());
    let value = match serde_json::to_value(&requester) {
        Ok(v) => v,
        Err(e) => return response.deny(format!("cannot write spec.requester: {e}")),
    };
    let operations = if has_spec {
        serde_json::json!([{ "op": op, "path": "/spec/requester", "value": value }])
    } else {
        serde_json::json!([{ "op": "add", "path": "/spec", "value": { "requester": value } }])
    };
    let patch: json_patch::Patch = match serde_json::from_value(operations) {
        Ok(p) => p,
        Err(e) => return response.deny(format!("cannot write spec.requester: {e}")),
    };
    match response.clone().with_patch(patch) {
        Ok(patched) => patched,
        Err(e) => response.deny(format!("cannot write spec.requester: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        operation: &str,
        object: serde_json::Value,
        old: serde_json::Value,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "tokend.io", "version": "v1alpha1", "kind": "ServiceAccountToken"},
                "resource": {"group": "tokend.io", "version": "v1alpha1", "resource": "serviceaccounttokens"},
                "name": "sat-sample",
                "namespace": "team-a",
                "operation": operation,
                "userInfo": {"username": "alice", "uid": "42", "groups": ["dev", "system:authenticated"],
                             "extra": {"scopes": ["a"]}},
                "object": object,
                "oldObject": old,
                "dryRun": false
            }
        }))
        .expect("a review");
        review.try_into().expect("a request")
    }

    fn sat(spec: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "tokend.io/v1alpha1", "kind": "ServiceAccountToken",
            "metadata": {"name": "sat-sample", "namespace": "team-a", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec
        })
    }

    fn decide_now(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        decide(request, &RecordKey::new(&[7; 32]), Timestamp::now())
    }

    #[test]
    fn create_is_stamped_with_the_api_servers_user_info() {
        let answer = decide_now(&request(
            "CREATE",
            sat(serde_json::json!({"duration": "1h"})),
            serde_json::Value::Null,
        ));
        assert!(answer.allowed);
        let patch: serde_json::Value =
            serde_json::from_slice(answer.patch.as_deref().expect("a patch")).expect("json patch");
        assert_eq!(patch[0]["op"], "add");
        assert_eq!(patch[0]["path"], "/spec/requester");
        assert_eq!(patch[0]["value"]["username"], "alice");
        assert_eq!(patch[0]["value"]["uid"], "42");
        assert_eq!(patch[0]["value"]["groups"][0], "dev");
        assert_eq!(patch[0]["value"]["extra"]["scopes"][0], "a");
        assert!(
            patch[0]["value"]["seal"]
                .as_str()
                .is_some_and(|s| s.starts_with("r1.")),
            "sealed: {patch}"
        );
    }

    #[test]
    fn create_with_a_requester_is_refused() {
        let forged = sat(serde_json::json!({"requester": {"username": "system:admin"}}));
        let answer = decide_now(&request("CREATE", forged, serde_json::Value::Null));
        assert!(!answer.allowed);
    }

    #[test]
    fn update_may_not_change_the_requester_but_may_change_the_rest() {
        let old = sat(serde_json::json!({"requester": {"username": "alice"}}));
        let changed = sat(serde_json::json!({"requester": {"username": "mallory"}}));
        assert!(!decide_now(&request("UPDATE", changed, old.clone())).allowed);
        let removed = sat(serde_json::json!({"duration": "2h"}));
        assert!(!decide_now(&request("UPDATE", removed, old.clone())).allowed);
        let same = sat(serde_json::json!({"requester": {"username": "alice"}}));
        let unchanged = decide_now(&request("UPDATE", same, old.clone()));
        assert!(unchanged.allowed && unchanged.patch.is_none());
    }

    #[test]
    fn whoever_changes_the_spec_becomes_the_requester() {
        let old = sat(serde_json::json!({"requester": {"username": "creator"}}));
        let edited =
            sat(serde_json::json!({"clusterRole": "admin", "requester": {"username": "creator"}}));
        let answer = decide_now(&request("UPDATE", edited, old));
        assert!(answer.allowed);
        let patch: serde_json::Value =
            serde_json::from_slice(answer.patch.as_deref().expect("a patch")).expect("json patch");
        assert_eq!(patch[0]["op"], "replace");
        assert_eq!(patch[0]["path"], "/spec/requester");
        assert_eq!(patch[0]["value"]["username"], "alice");
        // Sealed for generation 2 of the object created at the old creation time.
        let seal = patch[0]["value"]["seal"].as_str().expect("a seal");
        let created = "2026-01-01T00:00:00Z"
            .parse::<Timestamp>()
            .expect("time")
            .as_second();
        assert!(seal.starts_with(&format!("r1.{created}.")), "{seal}");
    }
}
