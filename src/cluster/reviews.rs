//! The API server's judgements: TokenReview (who a token is) and SubjectAccessReview (what
//! an identity may do).

use super::*;

impl Cluster {
    /// TokenReview: what the API server's authenticator makes of a token right now.
    pub async fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<TokenReviewStatus> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.unwrap_or_default())
    }

    /// SubjectAccessReview: may this user do this, by the cluster's authorizers?
    pub async fn subject_access_review(
        &self,
        user: &str,
        uid: &str,
        groups: &[String],
        extra: &BTreeMap<String, Vec<String>>,
        access: &ResourceAccess<'_>,
    ) -> Result<AccessDecision> {
        let review = access_review(user, uid, groups, extra, access);
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let status = answer.status.unwrap_or_default();
        Ok(AccessDecision {
            allowed: status.allowed,
            reason: status.reason.unwrap_or_default(),
        })
    }
}

/// The SubjectAccessReview asking whether this identity, with everything its authenticator said
/// of it (extra included), may do `access`.
pub(super) fn access_review(
    user: &str,
    uid: &str,
    groups: &[String],
    extra: &BTreeMap<String, Vec<String>>,
    access: &ResourceAccess<'_>,
) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            uid: (!uid.is_empty()).then(|| uid.to_owned()),
            groups: Some(groups.to_vec()),
            extra: (!extra.is_empty()).then(|| extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(access.verb.to_owned()),
                group: Some(access.group.to_owned()),
                resource: Some(access.resource.to_owned()),
                subresource: access.subresource.map(str::to_owned),
                namespace: access.namespace.map(str::to_owned),
                name: access.name.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_review_carries_the_authenticators_extra() {
        let extra = BTreeMap::from([(
            "authentication.kubernetes.io/pod-name".to_owned(),
            vec!["web-0".to_owned()],
        )]);
        let access = ResourceAccess {
            verb: "create",
            group: "",
            resource: "serviceaccounts",
            subresource: Some("token"),
            namespace: Some("a"),
            name: Some("b"),
        };
        let review = access_review("u", "", &["g".to_owned()], &extra, &access);
        assert_eq!(review.spec.extra, Some(extra));
        let none = access_review("u", "", &[], &BTreeMap::new(), &access);
        assert_eq!(none.spec.extra, None);
    }
}
