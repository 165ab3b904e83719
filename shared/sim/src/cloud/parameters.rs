//! Parameter Store, for the claim locks: `PutParameter` with `Overwrite=false` is an
//! atomic create (`ParameterAlreadyExists`), as AWS documents.

use std::collections::BTreeMap;

use warmpool_core::error::CloudError;
use warmpool_core::ports::{Claim, Claims, init_lock};

use super::access::{Access, DEFAULT_CLAIMS_PATH, parameter_arn};
use super::{EPOCH_MS, SimCloud};

/// The claims and init locks ([`init_lock`]): name to (owner, last written at in ms since the epoch, version).
/// A parameter's version starts at 1 and grows by one with each overwrite; a deleted
/// and re-created parameter starts again at 1 (AWS, `PutParameter`: "Version: The new
/// version number of a parameter").
#[derive(Debug)]
pub(super) struct ParameterStore {
    pub(super) claims: BTreeMap<String, (String, u64, u64)>,
    /// The claims' path (`CLAIM_PARAMETER_PREFIX`), for the ARNs calls are authorised on.
    pub(super) path: String,
}

impl Default for ParameterStore {
    fn default() -> Self {
        Self { claims: BTreeMap::new(), path: DEFAULT_CLAIMS_PATH.to_owned() }
    }
}

impl Claims for SimCloud {
    async fn claim_if_unclaimed(&self, instance_id: &str, owner: &str) -> Result<bool, CloudError> {
        self.authorize(vec![Access::new("ssm:PutParameter", self.claim_arn(instance_id))]);
        self.call("PutParameter").await?;
        let result = async {
            let mut w = self.world();
            if w.params.claims.contains_key(instance_id) {
                return Ok(false);
            }
            w.params.claims.insert(instance_id.to_owned(), (owner.to_owned(), EPOCH_MS + self.elapsed_ms(), 1));
            Ok(true)
        }
        .await;
        self.answer("PutParameter", result)
    }

    async fn take_over(&self, stale: &Claim, owner: &str) -> Result<bool, CloudError> {
        self.authorize(vec![Access::new("ssm:PutParameter", self.claim_arn(&stale.instance_id))]);
        self.call("PutParameter").await?;
        let result = async {
            let now = EPOCH_MS + self.elapsed_ms();
            let mut w = self.world();
            let version = w.params.claims.get(&stale.instance_id).map_or(1, |(_, _, v)| v + 1);
            w.params.claims.insert(stale.instance_id.clone(), (owner.to_owned(), now, version));
            Ok(version == stale.version + 1)
        }
        .await;
        self.answer("PutParameter", result)
    }

    async fn release(&self, instance_id: &str) -> Result<(), CloudError> {
        // One call, authorised on each parameter it names.
        self.authorize(vec![
            Access::new("ssm:DeleteParameters", self.claim_arn(instance_id)),
            Access::new("ssm:DeleteParameters", self.claim_arn(&init_lock(instance_id))),
        ]);
        self.call("DeleteParameters").await?;
        let result = async {
            let mut w = self.world();
            w.params.claims.remove(instance_id);
            w.params.claims.remove(&init_lock(instance_id));
            Ok(())
        }
        .await;
        self.answer("DeleteParameters", result)
    }

    async fn claim_of(&self, instance_id: &str) -> Result<Option<Claim>, CloudError> {
        self.authorize(vec![Access::new("ssm:GetParameter", self.claim_arn(instance_id))]);
        self.call("GetParameter").await?;
        Ok(self.world().params.claims.get(instance_id).map(|(owner, at, version)| Claim {
            instance_id: instance_id.to_owned(),
            owner: owner.clone(),
            created_ms: *at,
            version: *version,
        }))
    }

    async fn list_claims(&self) -> Result<Vec<Claim>, CloudError> {
        let (listed, claims) = {
            let w = self.world();
            let claims: Vec<Claim> = w
                .params
                .claims
                .iter()
                // Init locks are one level deeper than claims: a listing that is not
                // recursive (the adapter's) does not return them.
                .filter(|(id, _)| !id.contains('/'))
                .map(|(id, (owner, at, version))| Claim {
                    instance_id: id.clone(),
                    owner: owner.clone(),
                    created_ms: *at,
                    version: *version,
                })
                .collect();
            (claims.len(), claims)
        };
        // `GetParametersByPath` returns at most 10 parameters a page; without `Recursive`,
        // only the claims (SSM API Reference, `GetParametersByPath`): a call per page of them.
        for _ in 0..listed.div_ceil(10).max(1) {
            // Authorised on the path itself.
            let path = self.world().params.path.clone();
            self.authorize(vec![Access::new("ssm:GetParametersByPath", parameter_arn(&path))]);
            self.call("GetParametersByPath").await?;
        }
        Ok(claims)
    }
}
