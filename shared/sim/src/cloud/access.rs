//! What each call asks IAM for: the action, the ARN of each resource it is authorised on,
//! and the request's condition keys, as the services authorise them (Service
//! Authorization Reference: "Actions, resources, and condition keys for Amazon EC2 Auto
//! Scaling", "... Amazon EC2", "... AWS Systems Manager", "... Amazon SQS"). Recorded for
//! every call made inside an invocation, so that the least-privilege test can evaluate
//! the template's policies against what the functions really ask for.
//!
//! `CreateAutoScalingGroup` with a launch template also asks for what launching from it
//! needs of the caller: Auto Scaling checks that the caller may `ec2:RunInstances` with
//! the template (and its instance profile's `iam:PassRole`, and `ec2:CreateTags` for the
//! tags it applies at launch) before it creates the group (Amazon EC2 Auto Scaling User
//! Guide, "Control Amazon EC2 launch template usage in Auto Scaling groups").

use std::collections::BTreeMap;

use super::SimCloud;
use crate::invocation::Invocation;

/// The partition, Region and account the in-memory cloud lives in (its queue URLs say
/// the same).
pub const PARTITION: &str = "aws";
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
/// What the in-memory launch template launches: its image, security group and instance
/// type, and the role of its instance profile.
pub const IMAGE: &str = "ami-0123456789abcdef0";
pub const SECURITY_GROUP: &str = "sg-0123456789abcdef0";
pub const INSTANCE_TYPE: &str = "t3.small";
pub const HOST_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/warmpool-HostRole";
/// Where the claims live unless told otherwise (`SimCloud::set_claims_path`).
pub const DEFAULT_CLAIMS_PATH: &str = "/warmpool/claims";

/// One authorisation a call needed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// The function whose role made the call.
    pub function: String,
    /// `service:Action`.
    pub action: String,
    /// The resource's ARN, or `*` for an action without resource-level permissions.
    pub resource: String,
    /// The request context's condition keys and their values.
    pub context: BTreeMap<String, String>,
}

impl Access {
    pub(super) fn new(action: &str, resource: impl Into<String>) -> Self {
        Self { function: String::new(), action: action.to_owned(), resource: resource.into(), context: BTreeMap::new() }
    }

    pub(super) fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }

    /// One condition key per tag, `<prefix><tag key>` (e.g. `autoscaling:ResourceTag/`).
    pub(super) fn with_tags<'t>(
        mut self,
        prefix: &str,
        tags: impl IntoIterator<Item = (&'t String, &'t String)>,
    ) -> Self {
        for (k, v) in tags {
            self.context.insert(format!("{prefix}{k}"), v.clone());
        }
        self
    }
}

fn arn(service: &str, account: &str, resource: &str) -> String {
    format!("arn:{PARTITION}:{service}:{REGION}:{account}:{resource}")
}

/// An Auto Scaling group's ARN (its id part is the group's own; any will do here, and
/// policies match it with `*`).
pub(super) fn group_arn(name: &str) -> String {
    arn(
        "autoscaling",
        ACCOUNT,
        &format!("autoScalingGroup:00000000-0000-4000-8000-000000000000:autoScalingGroupName/{name}"),
    )
}

pub(super) fn ec2_arn(resource: &str) -> String {
    arn("ec2", ACCOUNT, resource)
}

pub(super) fn document_arn(name: &str) -> String {
    arn("ssm", ACCOUNT, &format!("document/{name}"))
}

/// A parameter's ARN: its name without the leading `/`.
pub(super) fn parameter_arn(name: &str) -> String {
    arn("ssm", ACCOUNT, &format!("parameter/{}", name.trim_start_matches('/')))
}

/// A queue's ARN from its URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
#[must_use]
pub fn queue_arn(url: &str) -> String {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    arn("sqs", account, name)
}

/// The `RunInstances`, `CreateTags`, `PassRole` and template read a launch from our
/// template asks of the caller that creates a group with it, in `subnets`.
pub(super) fn launch_from_template(launch_template: &str, subnets: &[String]) -> Vec<Access> {
    let template = ec2_arn(&format!("launch-template/{launch_template}"));
    let run = |resource: String| Access::new("ec2:RunInstances", resource).with("ec2:LaunchTemplate", template.clone());
    let mut out = vec![
        run(ec2_arn("instance/*")).with("ec2:InstanceType", INSTANCE_TYPE),
        run(format!("arn:{PARTITION}:ec2:{REGION}::image/{IMAGE}")),
        run(ec2_arn("network-interface/*")),
        run(ec2_arn(&format!("security-group/{SECURITY_GROUP}"))),
        run(ec2_arn("volume/*")),
        run(template.clone()),
    ];
    out.extend(subnets.iter().map(|s| run(ec2_arn(&format!("subnet/{s}")))));
    for tagged in ["instance/*", "volume/*"] {
        out.push(Access::new("ec2:CreateTags", ec2_arn(tagged)).with("ec2:CreateAction", "RunInstances"));
    }
    out.push(Access::new("iam:PassRole", HOST_ROLE_ARN).with("iam:PassedToService", "ec2.amazonaws.com"));
    out.push(Access::new("ec2:DescribeLaunchTemplateVersions", "*"));
    out
}

impl SimCloud {
    /// Records what a call made inside an invocation needed (outside one, a test's own
    /// set-up, nothing).
    pub(super) fn authorize(&self, accesses: Vec<Access>) {
        let Some(inv) = Invocation::current() else { return };
        let mut w = self.world();
        for mut a in accesses {
            inv.function.clone_into(&mut a.function);
            w.record.accesses.push(a);
        }
    }

    /// `action` on the group `name`, with its tags as `autoscaling:ResourceTag/` keys.
    pub(super) fn group_access(&self, action: &str, name: &str) -> Access {
        let w = self.world();
        let access = Access::new(action, group_arn(name));
        match w.asg.groups.get(name) {
            Some(g) => access.with_tags("autoscaling:ResourceTag/", &g.tags),
            None => access,
        }
    }

    /// `action` on the instance `instance_id`, with the tags EC2 puts on it (the group it
    /// is in, the launch template it came from) as `<prefix><tag key>` condition keys.
    pub(super) fn instance_access(&self, action: &str, instance_id: &str, prefix: &str) -> Access {
        let w = self.world();
        let mut access = Access::new(action, ec2_arn(&format!("instance/{instance_id}")));
        if let Some(i) = w.ec2.instances.get(instance_id) {
            if let Some(group) = &i.group {
                access = access.with(format!("{prefix}aws:autoscaling:groupName"), group.clone());
            }
            if !i.launch_template.is_empty() {
                access = access.with(format!("{prefix}aws:ec2launchtemplate:id"), i.launch_template.clone());
            }
        }
        access
    }

    /// Every authorisation the functions' calls needed so far, in order.
    #[must_use]
    pub fn accesses(&self) -> Vec<Access> {
        self.world().record.accesses.clone()
    }

    /// Where the claims' parameters live (the functions' `CLAIM_PARAMETER_PREFIX`).
    pub fn set_claims_path(&self, path: &str) {
        path.trim_end_matches('/').clone_into(&mut self.world().params.path);
    }

    pub(super) fn claim_arn(&self, name: &str) -> String {
        parameter_arn(&format!("{}/{name}", self.world().params.path))
    }
}
