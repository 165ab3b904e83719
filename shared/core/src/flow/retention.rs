//! Failed users' groups are kept for inspection (the record says why the user failed),
//! then deleted: a flood of signups that fail would otherwise leave an Auto Scaling
//! group each, against the Region's quota (500 by default), for good.

use tracing::{info, warn};

use crate::Config;
use crate::domain::{UserRecord, UserState};
use crate::error::FlowError;
use crate::metrics::Metric;
use crate::ports::Cloud;

/// Deletes the groups of users who failed more than `FAILED_RETENTION_H` hours ago (one
/// listing of the failed users, a call per 100, then a delete each); none when the
/// retention is 0. Returns how many it deleted. A delete that fails is left to the next
/// housekeeping sweep.
pub(crate) async fn remove_expired_failed<C: Cloud>(cloud: &C, cfg: &Config, now_ms: u64) -> Result<usize, FlowError> {
    if cfg.failed_retention_h == 0 {
        return Ok(0);
    }
    let retention_ms = u64::from(cfg.failed_retention_h) * 3_600_000;
    let mut removed = 0;
    for group in cloud.list_user_groups(&cfg.user_group_prefix, &[UserState::Failed]).await? {
        // The listing's filter is Auto Scaling's; the record is read as strictly as ever,
        // and only a record that says failed, of the group's own user, is acted on.
        let Some(record) = UserRecord::from_tags(&group.tags) else { continue };
        let own = cfg.user_of_group(&group.name) == Some(record.user_id.as_str());
        if record.state != UserState::Failed || !own || now_ms.saturating_sub(record.updated_at_ms) < retention_ms {
            continue;
        }
        match cloud.delete_group(&group.name).await {
            Ok(()) => {
                removed += 1;
                cloud.record(Metric::FailedGroupRemoved);
                info!(user_id = %record.user_id, group = %group.name, reason = record.reason.as_deref().unwrap_or(""),
                    retention_h = cfg.failed_retention_h, "failed user's group removed after its retention");
            }
            Err(e) => warn!(user_id = %record.user_id, group = %group.name, error = %e,
                "could not remove a failed user's group; the next housekeeping sweep tries again"),
        }
    }
    Ok(removed)
}
