//! Tenant isolation, read from `template.yaml`: a user's host cannot open a connection to
//! another user's host, and can read nothing of the account beyond what Run Command needs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeSet;

use serde_norway::Value;
use warmpool_tests::{resources_of_type, template};

/// Every string in `v`, at any depth (a short-form intrinsic as `!Tag text`).
fn all_strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().flat_map(all_strings).collect(),
        Value::Mapping(m) => m.iter().flat_map(|(k, v)| all_strings(k).into_iter().chain(all_strings(v))).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Tagged(t) => {
            let inner = all_strings(&t.value);
            if inner.is_empty() {
                vec![t.tag.to_string()]
            } else {
                inner.into_iter().map(|s| format!("{} {s}", t.tag)).collect()
            }
        }
        _ => vec![],
    }
}

/// What the SSM Agent needs for Run Command, and nothing else: to register and report,
/// and its two message channels (Systems Manager User Guide, "Configure instance
/// permissions"; the managed `AmazonSSMManagedInstanceCore` minus State Manager,
/// Inventory, Patch Manager, documents and Parameter Store).
const AGENT_ACTIONS: [&str; 11] = [
    "ssm:UpdateInstanceInformation",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
];

#[test]
fn a_host_can_do_only_what_run_command_needs() {
    let t = template();
    let role = &t["Resources"]["HostRole"]["Properties"];
    assert!(
        role["ManagedPolicyArns"].is_null(),
        "no managed policy (AmazonSSMManagedInstanceCore reads every parameter)"
    );
    let mut actions = BTreeSet::new();
    for policy in role["Policies"].as_sequence().expect("an inline policy") {
        for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            assert!(statement["NotAction"].is_null() && statement["NotResource"].is_null(), "{statement:?}");
            for a in all_strings(&statement["Action"]) {
                assert!(!a.contains('*'), "wildcard action {a}");
                actions.insert(a);
            }
        }
    }
    assert_eq!(actions, AGENT_ACTIONS.iter().map(|a| (*a).to_owned()).collect::<BTreeSet<_>>());
    // Nothing else grants the host role anything.
    for (id, r) in
        resources_of_type(&t, "AWS::IAM::Policy").into_iter().chain(resources_of_type(&t, "AWS::IAM::ManagedPolicy"))
    {
        assert!(
            !all_strings(&r["Properties"]).iter().any(|s| s.contains("HostRole")),
            "{id} grants the host role more"
        );
    }
    // IMDSv2 only, one hop: a container on the host cannot borrow the host's credentials.
    let metadata = &t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"];
    assert_eq!(metadata["HttpTokens"].as_str(), Some("required"));
    assert_eq!(metadata["HttpPutResponseHopLimit"].as_u64(), Some(1));
}

#[test]
fn hosts_cannot_reach_each_other() {
    let t = template();
    let data = &t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"];
    // The launch template names its security group (without one, hosts get the VPC's
    // default group, whose members reach each other on every port), and only that one.
    assert_eq!(all_strings(&data["SecurityGroupIds"]), ["!GetAtt HostSecurityGroup.GroupId"]);
    assert!(data["NetworkInterfaces"].is_null(), "no interface that could carry another group");
    let group = &t["Resources"]["HostSecurityGroup"]["Properties"];
    assert!(group["SecurityGroupIngress"].is_null(), "no inbound rule of its own");
    // The only inbound rule is the operator's one range, made only when it is set.
    let ingress = resources_of_type(&t, "AWS::EC2::SecurityGroupIngress");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    for (id, rule) in &ingress {
        assert_eq!(rule["Condition"].as_str(), Some("HostIngress"), "{id} exists only with HostIngressCidr set");
        let p = &rule["Properties"];
        assert_eq!(all_strings(&p["CidrIp"]), ["!Ref HostIngressCidr"], "{id}");
        assert_eq!(p["IpProtocol"].as_str(), Some("tcp"), "{id}");
    }
    let ingress_condition = all_strings(&t["Conditions"]["HostIngress"]).join(" ");
    assert!(ingress_condition.contains("HostIngressCidr"), "{ingress_condition}");
    assert_eq!(t["Parameters"]["HostIngressCidr"]["Default"].as_str(), Some(""), "no inbound traffic by default");
    // No rule anywhere admits a security group as its source (the hosts' own, above all).
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        for s in all_strings(r) {
            assert!(!s.contains("SourceSecurityGroup"), "{id:?} admits a security group: {s}");
        }
        let props = &r["Properties"];
        for key in ["SourceSecurityGroupId", "SourceSecurityGroupName"] {
            assert!(props[key].is_null(), "{id:?} has {key}");
        }
    }
}

/// `CloudFormation` stack names cannot contain `_`, so with user groups named
/// `<stack>_user_<id>` no user of one stack can map to another stack's pool
/// (`<stack>-pool`) or users: with `-user-`, user `x-pool` of stack `wp` was the pool
/// group of stack `wp-user-x`, and a delete of it tore that pool down.
#[test]
fn user_group_names_cannot_collide_with_another_stacks_groups() {
    let t = template();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(all_strings(&env["USER_ASG_PREFIX"]), ["!Sub ${AWS::StackName}_user_"]);
    assert_eq!(all_strings(&env["POOL_ASG_NAME"]), ["!Sub ${AWS::StackName}-pool"]);
    // Every reference to user groups in policies, conditions and rules uses the prefix.
    let text = std::fs::read_to_string(warmpool_tests::root().join("template.yaml")).unwrap();
    assert!(!text.contains("${AWS::StackName}-user-"), "a user-group reference with the old, ambiguous prefix");
    // The collision the prefix rules out: one stack's user group is never another's
    // group, for any stack names CloudFormation allows and any valid user id.
    let user_group = |stack: &str, user: &str| format!("{stack}_user_{user}");
    for (stack, other, user) in [("wp", "wp-user-x", "x-pool"), ("a", "a-b", "b-pool"), ("wp", "wp", "pool")] {
        assert_ne!(user_group(stack, user), format!("{other}-pool"), "{stack}/{user} vs {other}");
    }
    // A group name of ours always splits back into one stack: the stack is everything
    // before the first `_`, which a stack name cannot contain.
    let name = user_group("wp-user-x", "a_user_b");
    assert_eq!(name.split_once('_').map(|(s, _)| s), Some("wp-user-x"));
}

/// Every statement of every function's policies.
fn function_statements(t: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, r) in resources_of_type(t, "AWS::Serverless::Function") {
        for st in warmpool_tests::function_statements(t, r) {
            out.push((id.clone(), st));
        }
    }
    out
}

/// IAM that cannot be bent: each grant that could reach beyond our own hosts and groups
/// carries the condition that keeps it there.
#[test]
fn grants_that_could_reach_further_are_bound_by_conditions() {
    let t = template();
    let statements = function_statements(&t);
    let mut send_to_instances = 0;
    let mut creates = 0;
    let mut passes = 0;
    for (id, st) in &statements {
        let actions = all_strings(&st["Action"]);
        let resources = all_strings(&st["Resource"]);
        let condition = &st["Condition"];
        if actions.iter().any(|a| a == "ssm:SendCommand") && resources.iter().any(|r| r.contains(":instance/")) {
            send_to_instances += 1;
            // Only instances launched from our launch template…
            assert_eq!(
                all_strings(&condition["StringEquals"]["ssm:resourceTag/aws:ec2launchtemplate:id"]),
                ["!Ref HostLaunchTemplate"],
                "{id}: SendCommand to any instance of ours must also be from our launch template"
            );
            // …in one of our groups, named in full (never a bare wildcard).
            let groups = all_strings(&condition["StringLike"]["ssm:resourceTag/aws:autoscaling:groupName"]);
            assert!(!groups.is_empty(), "{id}: SendCommand without a group condition");
            for g in groups {
                assert!(g.starts_with("!Sub ${AWS::StackName}"), "{id}: SendCommand to group pattern {g}");
            }
        }
        if actions.iter().any(|a| a == "autoscaling:CreateAutoScalingGroup") {
            creates += 1;
            assert_eq!(
                actions,
                ["autoscaling:CreateAutoScalingGroup"],
                "{id}: the create stands alone, with its conditions"
            );
            assert_eq!(condition["NumericEquals"]["autoscaling:MinSize"].as_u64(), Some(0), "{id}");
            assert_eq!(condition["NumericLessThanEquals"]["autoscaling:MaxSize"].as_u64(), Some(1), "{id}");
            for key in ["autoscaling:InstanceTypes", "autoscaling:LaunchConfigurationName"] {
                assert_eq!(condition["Null"][key].as_str(), Some("true"), "{id}: {key} must be absent");
            }
        }
        if actions.iter().any(|a| a == "iam:PassRole") {
            passes += 1;
            assert_eq!(resources, ["!GetAtt HostRole.Arn"], "{id}");
            assert_eq!(condition["StringEquals"]["iam:PassedToService"].as_str(), Some("ec2.amazonaws.com"), "{id}");
        }
        assert!(st["NotAction"].is_null() && st["NotResource"].is_null(), "{id}: {st:?}");
        if let Some(m) = condition.as_mapping() {
            for (op, keys) in m {
                assert!(keys.as_mapping().is_some_and(|k| !k.is_empty()), "{id}: empty condition {op:?}");
            }
        }
    }
    assert!(send_to_instances >= 3, "lifecycle, signup and reconcile send commands: {send_to_instances}");
    assert_eq!(creates, 1, "only signup creates user groups");
    assert_eq!(passes, 1, "only signup passes the host role");
}
