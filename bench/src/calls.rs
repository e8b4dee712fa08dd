//! Counting the Kubernetes API calls a client makes, by method and resource, through a tower
//! layer on the kube-rs client: the evidence for "how many round trips per token".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::client::{Body, ClientBuilder};

/// A shared tally of API calls, keyed `METHOD resource[/subresource]`.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CallCounter {
    /// Records one request.
    pub fn record(&self, method: &http::Method, path: &str) {
        let key = format!("{method} {}", resource_of(path));
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(key).or_default() += 1;
        }
    }

    /// The counts so far, and clears them.
    pub fn take(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// A kube-rs client for `config` whose every request is counted here.
    pub fn client(&self, config: kube::Config) -> Result<kube::Client, kube::Error> {
        let counter = self.clone();
        let layer = tower::util::MapRequestLayer::new(move |request: http::Request<Body>| {
            counter.record(request.method(), request.uri().path());
            request
        });
        Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
    }
}

/// `secrets`, `serviceaccounts/token`, `tokenreviews`... from an API path.
pub fn resource_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return path.to_owned(),
    };
    let rest = match rest {
        ["namespaces", _ns, more @ ..] if !more.is_empty() => more,
        other => other,
    };
    match rest {
        [resource] | [resource, _] => (*resource).to_owned(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [] => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::resource_of;

    #[test]
    fn names_resources_and_subresources() {
        assert_eq!(
            resource_of("/api/v1/namespaces/ns/serviceaccounts/sa/token"),
            "serviceaccounts/token"
        );
        assert_eq!(resource_of("/api/v1/namespaces/ns/secrets"), "secrets");
        assert_eq!(resource_of("/api/v1/namespaces/ns/secrets/x"), "secrets");
        assert_eq!(resource_of("/api/v1/namespaces/ns"), "namespaces");
        assert_eq!(
            resource_of("/apis/authorization.k8s.io/v1/subjectaccessreviews"),
            "subjectaccessreviews"
        );
    }
}
