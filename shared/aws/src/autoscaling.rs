//! [`AutoScaling`] over `aws-sdk-autoscaling`.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::primitives::DateTime;
use aws_sdk_autoscaling::types::{
    Activity, AutoScalingGroup, Filter, LaunchTemplateSpecification, LifecycleState, ScalingActivityStatusCode, Tag,
    WarmPoolState,
};

use super::AwsCloud;
use super::errors::{Subject, classify};
use warmpool_core::domain::UserState;
use warmpool_core::error::CloudError;
use warmpool_core::ports::{
    AutoScaling, Group, Launch, LaunchKind, LifecycleResult, Member, MemberState, Membership, UserGroupSpec,
    WarmInstance, WarmPool, WarmPoolSize,
};

fn group_subject(group: &str) -> Subject<'_> {
    Subject { group: Some(group), ..Subject::default() }
}

fn member_subject<'a>(group: &'a str, instance_id: &'a str) -> Subject<'a> {
    Subject { group: Some(group), instance_id: Some(instance_id), ..Subject::default() }
}

fn group_tags(group: &str, tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(false)
                .build()
        })
        .collect()
}

fn to_group(g: &AutoScalingGroup) -> Group {
    let members = g
        .instances()
        .iter()
        .filter_map(|i| {
            Some(Member {
                instance_id: i.instance_id()?.to_owned(),
                state: MemberState::from_aws(i.lifecycle_state().map(LifecycleState::as_str).unwrap_or_default()),
                healthy: i.health_status() == Some("Healthy"),
                availability_zone: i.availability_zone().unwrap_or_default().to_owned(),
                launch_template: i.launch_template().and_then(|lt| lt.launch_template_id()).map(str::to_owned),
            })
        })
        .collect();
    let tags: BTreeMap<String, String> =
        g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect();
    Group {
        name: g.auto_scaling_group_name().unwrap_or_default().to_owned(),
        min_size: count(g.min_size()),
        max_size: count(g.max_size()),
        desired_capacity: count(g.desired_capacity()),
        members,
        tags,
    }
}

/// A launch activity's description: "Launching a new EC2 instance: i-0123…" (a failed
/// launch reads "Launching a new EC2 instance.  Status Reason: …"); with a warm pool,
/// "Launching a new EC2 instance into warm pool: i-…" and "… from warm pool: i-…".
const LAUNCH_DESCRIPTION: &str = "Launching a new EC2 instance";

fn to_launch(a: &Activity) -> Option<Launch> {
    if !a.description().is_some_and(|d| d.starts_with(LAUNCH_DESCRIPTION)) {
        return None;
    }
    let millis = |t: Option<&DateTime>| t.and_then(|t| t.to_millis().ok()).and_then(|ms| u64::try_from(ms).ok());
    Some(Launch {
        kind: LaunchKind::from_description(a.description().unwrap_or_default()),
        started_ms: millis(a.start_time())?,
        ended_ms: millis(a.end_time()),
        succeeded: a.status_code() == Some(&ScalingActivityStatusCode::Successful),
    })
}

fn count(n: Option<i32>) -> u32 {
    n.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

impl AutoScaling for AwsCloud {
    async fn create_user_group(&self, spec: &UserGroupSpec) -> Result<(), CloudError> {
        let template =
            LaunchTemplateSpecification::builder().launch_template_id(&spec.launch_template).version("$Latest").build();
        self.autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&spec.name)
            .launch_template(template)
            .min_size(0)
            .max_size(1)
            .desired_capacity(0)
            .vpc_zone_identifier(spec.subnets.join(","))
            .set_tags(Some(group_tags(&spec.name, &spec.tags)))
            .send()
            .await
            .map_err(|e| classify("CreateAutoScalingGroup", group_subject(&spec.name), &e))?;
        Ok(())
    }

    async fn describe_group(&self, name: &str) -> Result<Option<Group>, CloudError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| classify("DescribeAutoScalingGroups", group_subject(name), &e))?;
        Ok(out.auto_scaling_groups().iter().find(|g| g.auto_scaling_group_name() == Some(name)).map(to_group))
    }

    async fn groups_in_region(&self) -> Result<u32, CloudError> {
        let out = self
            .autoscaling
            .describe_account_limits()
            .send()
            .await
            .map_err(|e| classify("DescribeAccountLimits", Subject::default(), &e))?;
        let count = out.number_of_auto_scaling_groups().ok_or_else(|| CloudError::Transient {
            operation: "DescribeAccountLimits".to_owned(),
            message: "the answer has no NumberOfAutoScalingGroups".to_owned(),
        })?;
        Ok(u32::try_from(count).unwrap_or(0))
    }

    async fn list_user_groups(&self, prefix: &str, states: &[UserState]) -> Result<Vec<Group>, CloudError> {
        use warmpool_core::domain::tag;
        let mut filters = vec![Filter::builder().name("tag-key").values(tag::USER_ID).build()];
        if !states.is_empty() {
            let values = states.iter().map(|s| s.as_str().to_owned()).collect();
            filters.push(Filter::builder().name(format!("tag:{}", tag::STATE)).set_values(Some(values)).build());
        }
        let mut pages = self
            .autoscaling
            .describe_auto_scaling_groups()
            .set_filters(Some(filters))
            .max_records(100)
            .into_paginator()
            .send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeAutoScalingGroups", group_subject(prefix), &e))?;
            groups.extend(
                page.auto_scaling_groups()
                    .iter()
                    .filter(|g| g.auto_scaling_group_name().is_some_and(|n| n.starts_with(prefix)))
                    .map(to_group),
            );
        }
        Ok(groups)
    }

    async fn recent_launches(&self, group: &str) -> Result<Vec<Launch>, CloudError> {
        // One page (up to 100 activities, newest first) is a recent enough sample.
        let out = self
            .autoscaling
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(100)
            .send()
            .await
            .map_err(|e| classify("DescribeScalingActivities", group_subject(group), &e))?;
        Ok(out.activities().iter().filter_map(to_launch).collect())
    }

    async fn instance_membership(&self, instance_id: &str) -> Result<Option<Membership>, CloudError> {
        let out =
            self.autoscaling.describe_auto_scaling_instances().instance_ids(instance_id).send().await.map_err(|e| {
                classify(
                    "DescribeAutoScalingInstances",
                    Subject { instance_id: Some(instance_id), ..Subject::default() },
                    &e,
                )
            })?;
        Ok(out.auto_scaling_instances().iter().find(|i| i.instance_id() == Some(instance_id)).and_then(|i| {
            Some(Membership {
                group: i.auto_scaling_group_name()?.to_owned(),
                state: MemberState::from_aws(i.lifecycle_state().unwrap_or_default()),
            })
        }))
    }

    async fn detach_instance(&self, group: &str, instance_id: &str) -> Result<(), CloudError> {
        self.autoscaling
            .detach_instances()
            .auto_scaling_group_name(group)
            .instance_ids(instance_id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map_err(|e| classify("DetachInstances", member_subject(group, instance_id), &e))?;
        Ok(())
    }

    async fn attach_instance(&self, group: &str, instance_id: &str) -> Result<(), CloudError> {
        self.autoscaling
            .attach_instances()
            .auto_scaling_group_name(group)
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| classify("AttachInstances", member_subject(group, instance_id), &e))?;
        Ok(())
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(i32::try_from(desired).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify("SetDesiredCapacity", group_subject(group), &e))?;
        Ok(())
    }

    async fn terminate_instance(&self, instance_id: &str, decrement_desired: bool) -> Result<(), CloudError> {
        self.autoscaling
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(decrement_desired)
            .send()
            .await
            .map_err(|e| {
                classify(
                    "TerminateInstanceInAutoScalingGroup",
                    Subject { instance_id: Some(instance_id), ..Subject::default() },
                    &e,
                )
            })?;
        Ok(())
    }

    async fn tag_group(&self, group: &str, tags: &[(String, String)]) -> Result<(), CloudError> {
        self.autoscaling
            .create_or_update_tags()
            .set_tags(Some(group_tags(group, tags)))
            .send()
            .await
            .map_err(|e| classify("CreateOrUpdateTags", group_subject(group), &e))?;
        Ok(())
    }

    async fn untag_group(&self, group: &str, keys: &[&str]) -> Result<(), CloudError> {
        let tags = keys
            .iter()
            .map(|k| Tag::builder().resource_id(group).resource_type("auto-scaling-group").key(*k).build())
            .collect();
        self.autoscaling
            .delete_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify("DeleteTags", group_subject(group), &e))?;
        Ok(())
    }

    async fn update_group_sizes(&self, group: &str, min: u32, max: u32, desired: u32) -> Result<(), CloudError> {
        let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        self.autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .min_size(clamp(min))
            .max_size(clamp(max))
            .desired_capacity(clamp(desired))
            .send()
            .await
            .map_err(|e| classify("UpdateAutoScalingGroup", group_subject(group), &e))?;
        Ok(())
    }

    async fn delete_group(&self, group: &str) -> Result<(), CloudError> {
        self.autoscaling
            .delete_auto_scaling_group()
            .auto_scaling_group_name(group)
            .force_delete(true)
            .send()
            .await
            .map_err(|e| classify("DeleteAutoScalingGroup", group_subject(group), &e))?;
        Ok(())
    }

    async fn complete_lifecycle_action(
        &self,
        group: &str,
        hook: &str,
        instance_id: &str,
        result: LifecycleResult,
    ) -> Result<(), CloudError> {
        self.autoscaling
            .complete_lifecycle_action()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .instance_id(instance_id)
            .lifecycle_action_result(result.as_str())
            .send()
            .await
            .map_err(|e| classify("CompleteLifecycleAction", member_subject(group, instance_id), &e))?;
        Ok(())
    }

    async fn describe_warm_pool(&self, group: &str) -> Result<Option<WarmPool>, CloudError> {
        // The SDK's paginator follows NextToken (50 instances a page, DescribeWarmPool's
        // largest).
        let mut pages = self
            .autoscaling
            .describe_warm_pool()
            .auto_scaling_group_name(group)
            .max_records(50)
            .into_paginator()
            .send();
        let mut pool: Option<WarmPool> = None;
        let mut instances = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeWarmPool", group_subject(group), &e))?;
            if let Some(c) = page.warm_pool_configuration() {
                pool.get_or_insert(WarmPool {
                    min_size: count(c.min_size()),
                    max_group_prepared_capacity: c.max_group_prepared_capacity().and_then(|n| u32::try_from(n).ok()),
                    instances: Vec::new(),
                });
            }
            instances.extend(page.instances().iter().filter_map(|i| {
                Some(WarmInstance {
                    instance_id: i.instance_id()?.to_owned(),
                    state: i.lifecycle_state().map(LifecycleState::as_str).unwrap_or_default().to_owned(),
                })
            }));
        }
        Ok(pool.map(|p| WarmPool { instances, ..p }))
    }

    async fn put_warm_pool(&self, group: &str, pool_state: &str, size: WarmPoolSize) -> Result<(), CloudError> {
        let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        self.autoscaling
            .put_warm_pool()
            .auto_scaling_group_name(group)
            .pool_state(WarmPoolState::from(pool_state))
            .min_size(clamp(size.min_size))
            .max_group_prepared_capacity(clamp(size.max_group_prepared_capacity))
            .send()
            .await
            .map_err(|e| classify("PutWarmPool", group_subject(group), &e))?;
        Ok(())
    }
}
