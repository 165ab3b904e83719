//! Parameter Store, for the claim locks: `PutParameter` with `Overwrite=false` is an
//! atomic create (`ParameterAlreadyExists`), as AWS documents.

use std::collections::BTreeMap;

use warmpool_core::error::CloudError;
use warmpool_core::ports::{Claim, ClaimOutcome, Claims};

use super::{EPOCH_MS, SimCloud};

/// The claims: instance id to (owner, written at, ms since the epoch).
#[derive(Debug, Default)]
pub(super) struct ParameterStore {
    pub(super) claims: BTreeMap<String, (String, u64)>,
}

impl Claims for SimCloud {
    async fn claim(&self, instance_id: &str, owner: &str) -> Result<ClaimOutcome, CloudError> {
        self.call("PutParameter").await?;
        let holder = {
            let mut w = self.world();
            let holder = w.params.claims.get(instance_id).map(|(owner, _)| owner.clone());
            if holder.is_none() {
                w.params.claims.insert(instance_id.to_owned(), (owner.to_owned(), EPOCH_MS + self.elapsed_ms()));
            }
            holder
        };
        match holder {
            Some(holder) => {
                self.call("GetParameter").await?;
                Ok(ClaimOutcome::HeldBy(holder))
            }
            None => Ok(ClaimOutcome::Created),
        }
    }

    async fn release(&self, instance_id: &str) -> Result<(), CloudError> {
        self.call("DeleteParameter").await?;
        self.world().params.claims.remove(instance_id);
        Ok(())
    }

    async fn claim_of(&self, instance_id: &str) -> Result<Option<Claim>, CloudError> {
        self.call("GetParameter").await?;
        Ok(self.world().params.claims.get(instance_id).map(|(owner, at)| Claim {
            instance_id: instance_id.to_owned(),
            owner: owner.clone(),
            created_ms: *at,
        }))
    }

    async fn list_claims(&self) -> Result<Vec<Claim>, CloudError> {
        let claims: Vec<Claim> = self
            .world()
            .params
            .claims
            .iter()
            .map(|(id, (owner, at))| Claim { instance_id: id.clone(), owner: owner.clone(), created_ms: *at })
            .collect();
        // `GetParametersByPath` returns at most 10 parameters a page: one call each.
        for _ in 0..claims.len().div_ceil(10).max(1) {
            self.call("GetParametersByPath").await?;
        }
        Ok(claims)
    }
}
