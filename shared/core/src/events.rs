//! EventBridge detail types the functions act on, in the shapes AWS documents.
//!
//! `aws_lambda_events` provides the envelope (`EventBridgeEvent<T>`); the details are
//! ours because its SSM type declares `parameters` as a map of strings, while the real
//! event carries arrays of strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::FlowError;

pub const SOURCE_AUTOSCALING: &str = "aws.autoscaling";
pub const SOURCE_SSM: &str = "aws.ssm";
pub const LAUNCH_SUCCESSFUL: &str = "EC2 Instance Launch Successful";
pub const LAUNCH_UNSUCCESSFUL: &str = "EC2 Instance Launch Unsuccessful";
pub const LAUNCH_LIFECYCLE_ACTION: &str = "EC2 Instance-launch Lifecycle Action";
pub const COMMAND_INVOCATION_STATUS: &str = "EC2 Command Invocation Status-change Notification";
pub const COMMAND_STATUS: &str = "EC2 Command Status-change Notification";
pub const LAUNCHING_TRANSITION: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
/// `Origin` / `Destination` of a lifecycle action of a group with a warm pool (the
/// other values are `EC2` and `AutoScalingGroup`).
pub const WARM_POOL: &str = "WarmPool";

/// Detail of `EC2 Instance Launch Successful` (also sent for `AttachInstances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchSuccessful {
    pub auto_scaling_group_name: String,
    #[serde(rename = "EC2InstanceId")]
    pub ec2_instance_id: String,
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub status_code: String,
}

/// Detail of `EC2 Instance Launch Unsuccessful`: a launch activity failed (EC2 capacity,
/// an instance or vCPU quota, no free address in the subnet); Auto Scaling tries again
/// on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchUnsuccessful {
    pub auto_scaling_group_name: String,
    /// Often empty: the launch failed before EC2 gave the instance an id.
    #[serde(rename = "EC2InstanceId", default)]
    pub ec2_instance_id: String,
    /// Why, in EC2's words.
    #[serde(default)]
    pub status_message: String,
}

/// Detail of `EC2 Instance-launch Lifecycle Action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleAction {
    #[serde(default)]
    pub lifecycle_action_token: String,
    pub auto_scaling_group_name: String,
    pub lifecycle_hook_name: String,
    #[serde(rename = "EC2InstanceId")]
    pub ec2_instance_id: String,
    pub lifecycle_transition: String,
    /// `EC2` (a new instance) or `WarmPool` (a warmed instance leaving the warm pool).
    #[serde(default)]
    pub origin: String,
    /// `AutoScalingGroup` or `WarmPool` (a new instance entering the warm pool).
    #[serde(default)]
    pub destination: String,
}

impl LifecycleAction {
    /// A warmed instance on its way from the warm pool into the group: prepared when it
    /// entered the warm pool, started again now.
    #[must_use]
    pub fn leaves_warm_pool(&self) -> bool {
        self.origin == WARM_POOL
    }
}

/// Detail of `EC2 Command Invocation Status-change Notification` (one instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct CommandInvocation {
    pub command_id: String,
    pub document_name: String,
    pub instance_id: String,
    #[serde(default)]
    pub requested_date_time: String,
    pub status: String,
}

/// Detail of `EC2 Command Status-change Notification` (the whole command). Parameter
/// values are arrays of strings, as in the real event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct CommandStatus {
    pub command_id: String,
    pub document_name: String,
    #[serde(default)]
    pub expire_after: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub requested_date_time: String,
    pub status: String,
}

/// The outcome of an SSM command on one instance, from its status string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    Success,
    /// Failed, TimedOut, Cancelled and the detailed terminal failures.
    Failure,
    /// Pending, InProgress, Delayed, Cancelling: not final yet.
    Pending,
}

impl CommandOutcome {
    #[must_use]
    pub fn from_status(status: &str) -> Self {
        match status {
            "Success" => Self::Success,
            "Failed"
            | "TimedOut"
            | "Cancelled"
            | "Delivery Timed Out"
            | "Execution Timed Out"
            | "Undeliverable"
            | "Terminated"
            | "Incomplete"
            | "Access Denied"
            | "No Instances In Tag"
            | "Rate Exceeded" => Self::Failure,
            _ => Self::Pending,
        }
    }
}

/// The Auto Scaling events the lifecycle function handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsgEvent {
    LaunchSuccessful(LaunchSuccessful),
    LaunchUnsuccessful(LaunchUnsuccessful),
    LaunchLifecycleAction(LifecycleAction),
    /// Any other detail type: logged and ignored.
    Other(String),
}

impl AsgEvent {
    /// Types the `detail` of an EventBridge event by its `detail-type`.
    pub fn parse(detail_type: &str, detail: serde_json::Value) -> Result<Self, FlowError> {
        let bad = |e: serde_json::Error| FlowError::InvalidInput(format!("{detail_type} detail: {e}"));
        Ok(match detail_type {
            LAUNCH_SUCCESSFUL => Self::LaunchSuccessful(serde_json::from_value(detail).map_err(bad)?),
            LAUNCH_UNSUCCESSFUL => Self::LaunchUnsuccessful(serde_json::from_value(detail).map_err(bad)?),
            LAUNCH_LIFECYCLE_ACTION => Self::LaunchLifecycleAction(serde_json::from_value(detail).map_err(bad)?),
            other => Self::Other(other.to_owned()),
        })
    }
}

/// The SSM events the command-status function handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsmEvent {
    Invocation(CommandInvocation),
    /// The command-level event: the flow acts on the per-instance one, so this is
    /// recorded and ignored.
    Command(CommandStatus),
    Other(String),
}

impl SsmEvent {
    pub fn parse(detail_type: &str, detail: serde_json::Value) -> Result<Self, FlowError> {
        let bad = |e: serde_json::Error| FlowError::InvalidInput(format!("{detail_type} detail: {e}"));
        Ok(match detail_type {
            COMMAND_INVOCATION_STATUS => Self::Invocation(serde_json::from_value(detail).map_err(bad)?),
            COMMAND_STATUS => Self::Command(serde_json::from_value(detail).map_err(bad)?),
            other => Self::Other(other.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        assert_eq!(CommandOutcome::from_status("Success"), CommandOutcome::Success);
        for s in ["Failed", "TimedOut", "Cancelled"] {
            assert_eq!(CommandOutcome::from_status(s), CommandOutcome::Failure);
        }
        assert_eq!(CommandOutcome::from_status("InProgress"), CommandOutcome::Pending);
    }

    #[test]
    fn command_status_parameters_are_arrays() {
        let detail = serde_json::json!({
            "command-id": "c", "document-name": "d", "expire-after": "x",
            "parameters": {"UserId": ["u1"]}, "requested-date-time": "t", "status": "Success"
        });
        let SsmEvent::Command(c) = SsmEvent::parse(COMMAND_STATUS, detail).unwrap() else { panic!() };
        assert_eq!(c.parameters["UserId"], vec!["u1".to_string()]);
    }
}
