//! The Auto Scaling calls only an operator makes (`warmpool drain` and `resume`):
//! `UpdateAutoScalingGroup` of the sizes and `DeleteTags`. The trait methods in
//! `autoscaling.rs` call these.

use warmpool_core::error::CloudError;

use super::SimCloud;

impl SimCloud {
    /// `UpdateAutoScalingGroup`'s sizes. Auto Scaling refuses a desired capacity outside
    /// the new bounds, and a minimum above the maximum (`ValidationError`, API reference,
    /// `UpdateAutoScalingGroup`); the scaling that follows terminates or launches toward
    /// the new desired capacity as after `SetDesiredCapacity`.
    pub(super) async fn update_sizes(&self, group: &str, min: u32, max: u32, desired: u32) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:UpdateAutoScalingGroup", group)]);
        self.call("UpdateAutoScalingGroup").await?;
        let result = {
            let mut w = self.world();
            if !(min <= desired && desired <= max) {
                Err(CloudError::Invalid {
                    operation: "UpdateAutoScalingGroup".into(),
                    message: format!("ValidationError: desired capacity {desired} is outside min {min} and max {max}"),
                })
            } else if w.asg.groups.contains_key(group) {
                let window = self.lag_window();
                self.lag_group(&mut w, group, window);
                if let Some(g) = w.asg.groups.get_mut(group) {
                    (g.min, g.max, g.desired) = (min, max, desired);
                }
                self.note(&mut w, format!("{group} sizes set to min {min}, max {max}, desired {desired}"));
                Ok(())
            } else {
                Err(CloudError::NotFound { resource: group.to_owned() })
            }
        };
        self.answer("UpdateAutoScalingGroup", result)
    }

    /// `DeleteTags` on a group (a key it does not carry is no error, as in AWS).
    pub(super) async fn untag(&self, group: &str, keys: &[&str]) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:DeleteTags", group)]);
        self.call("DeleteTags").await?;
        let result = {
            let mut w = self.world();
            match w.asg.groups.get_mut(group) {
                Some(g) => {
                    for k in keys {
                        g.tags.remove(*k);
                    }
                    Ok(())
                }
                None => Err(CloudError::NotFound { resource: group.to_owned() }),
            }
        };
        self.answer("DeleteTags", result)
    }
}
