//! [`Instances`] over `aws-sdk-ec2`: finding and ending instances of our launch
//! template that no Auto Scaling group lists.

use aws_sdk_ec2::types::{Filter, Instance, Reservation};

use super::AwsCloud;
use super::errors::{Subject, classify};
use warmpool_core::error::CloudError;
use warmpool_core::ports::{Instances, OutsideInstance};

/// The tag EC2 puts on every instance launched from a launch template.
pub(crate) const LAUNCH_TEMPLATE_TAG: &str = "aws:ec2launchtemplate:id";
/// The tag Auto Scaling puts on its members, and removes when one leaves the group.
pub(crate) const GROUP_TAG: &str = "aws:autoscaling:groupName";

fn outside(i: &Instance) -> Option<OutsideInstance> {
    if i.tags().iter().any(|t| t.key() == Some(GROUP_TAG)) {
        return None;
    }
    Some(OutsideInstance {
        instance_id: i.instance_id()?.to_owned(),
        launched_ms: i.launch_time().and_then(|t| u64::try_from(t.to_millis().ok()?).ok()).unwrap_or_default(),
    })
}

impl Instances for AwsCloud {
    async fn instances_outside_groups(&self, launch_template: &str) -> Result<Vec<OutsideInstance>, CloudError> {
        let filters = [
            Filter::builder().name(format!("tag:{LAUNCH_TEMPLATE_TAG}")).values(launch_template).build(),
            Filter::builder().name("instance-state-name").values("pending").values("running").build(),
        ];
        let mut pages =
            self.ec2.describe_instances().set_filters(Some(filters.to_vec())).max_results(1000).into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                classify("DescribeInstances", Subject { resource: Some(launch_template), ..Subject::default() }, &e)
            })?;
            found.extend(page.reservations().iter().flat_map(Reservation::instances).filter_map(outside));
        }
        Ok(found)
    }

    async fn terminate_outside(&self, instance_id: &str) -> Result<(), CloudError> {
        self.ec2.terminate_instances().instance_ids(instance_id).send().await.map_err(|e| {
            classify(
                "TerminateInstances",
                Subject { instance_id: Some(instance_id), resource: Some(instance_id), ..Subject::default() },
                &e,
            )
        })?;
        Ok(())
    }
}
