//! Maps SDK errors to [`CloudError`] by error code (and, for Auto Scaling's catch-all
//! `ValidationError`, by the documented message).

use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use warmpool_core::error::CloudError;

/// What the failed call was about, to fill in the typed error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub group: Option<&'a str>,
    pub instance_id: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub command_id: Option<&'a str>,
}

/// Classifies an SDK error from `operation` on `subject`.
pub fn classify<E, R>(operation: &str, subject: Subject<'_>, err: &SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or_default();
    let message = err.message().unwrap_or_default().to_owned();
    let service = matches!(err, SdkError::ServiceError(_));
    if !service {
        // Timeouts, connection failures, unreadable responses.
        return CloudError::Transient {
            operation: operation.to_owned(),
            message: DisplayErrorContext(err).to_string().chars().take(300).collect(),
        };
    }
    classify_code(operation, subject, code, &message)
}

/// Classifies by the error code and message AWS returned.
#[must_use]
pub fn classify_code(operation: &str, subject: Subject<'_>, code: &str, message: &str) -> CloudError {
    let group = subject.group.unwrap_or_default().to_owned();
    let instance_id = subject.instance_id.unwrap_or_default().to_owned();
    let resource = subject.resource.or(subject.group).or(subject.instance_id).unwrap_or(operation).to_owned();
    let lower = message.to_ascii_lowercase();
    match code {
        "AlreadyExists" | "AlreadyExistsFault" | "ParameterAlreadyExists" => CloudError::AlreadyExists { resource },
        "ParameterNotFound"
        | "ResourceNotFound"
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "QueueDoesNotExist"
        | "InvalidInstanceID.NotFound" => CloudError::NotFound { resource },
        "InvalidInstanceId" => CloudError::AgentNotReady { instance_id },
        "InvocationDoesNotExist" => CloudError::InvocationDoesNotExist {
            command_id: subject.command_id.unwrap_or_default().to_owned(),
            instance_id,
        },
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "TooManyUpdates"
        | "RequestThrottled"
        | "ResourceContention"
        | "ResourceContentionFault" => CloudError::Throttled { operation: operation.to_owned() },
        "ServiceUnavailable" | "InternalFailure" | "InternalServerError" | "InternalError" | "ServiceFailure" => {
            CloudError::Transient { operation: operation.to_owned(), message: message.to_owned() }
        }
        "ValidationError" if lower.contains("is not part of auto scaling group") => {
            CloudError::NotInGroup { group, instance_id }
        }
        // AttachInstances: "The instance i-1 is already part of Auto Scaling group g." (or
        // "... part of an Auto Scaling group.").
        "ValidationError" if lower.contains("already part of") => {
            CloudError::AlreadyInGroup { instance_id, message: message.to_owned() }
        }
        "ValidationError" if lower.contains("not in inservice or standby") => {
            CloudError::NotInService { instance_id, message: message.to_owned() }
        }
        "ValidationError" if lower.contains("no active lifecycle action") => {
            CloudError::NoActiveLifecycleAction { instance_id }
        }
        "ScalingActivityInProgress" | "ScalingActivityInProgressFault" => {
            CloudError::ScalingActivityInProgress { operation: operation.to_owned() }
        }
        "LimitExceeded" | "LimitExceededFault" => {
            CloudError::LimitExceeded { operation: operation.to_owned(), message: message.to_owned() }
        }
        // "Currently, desiredSize equals minSize (3). Terminating instance without
        // replacement will violate group's min size constraint. ..."
        "ValidationError" if lower.contains("min size constraint") => {
            CloudError::BelowMinSize { group, message: message.to_owned() }
        }
        // AttachInstances: "AutoScalingGroup g has min-size=0, max-size=1, and
        // desired-size=1. To attach 1 instance, please update the AutoScalingGroup sizes
        // appropriately."; SetDesiredCapacity: "New SetDesiredCapacity value 3 is above max
        // value 2 for the AutoScalingGroup." (A detach below MinSize says "To detach" and
        // is not this.)
        "ValidationError" if lower.contains("to attach") || lower.contains("above max") => {
            CloudError::MaxSizeExceeded { group, message: message.to_owned() }
        }
        "ValidationError" if lower.contains("not found") || lower.contains("does not exist") => {
            CloudError::NotFound { resource }
        }
        _ => CloudError::Invalid {
            operation: operation.to_owned(),
            message: if code.is_empty() { message.to_owned() } else { format!("{code}: {message}") },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject<'static> {
        Subject { group: Some("pool"), instance_id: Some("i-1"), ..Subject::default() }
    }

    #[test]
    fn lost_race_messages_map_to_typed_errors() {
        let e = classify_code(
            "DetachInstances",
            subject(),
            "ValidationError",
            "The instance i-1 is not part of Auto Scaling group pool.",
        );
        assert_eq!(e, CloudError::NotInGroup { group: "pool".into(), instance_id: "i-1".into() });
        let e = classify_code(
            "DetachInstances",
            subject(),
            "ValidationError",
            "The instance i-1 is not in InService or Standby.",
        );
        assert!(matches!(e, CloudError::NotInService { .. }));
        let e = classify_code(
            "CompleteLifecycleAction",
            subject(),
            "ValidationError",
            "No active Lifecycle Action found with instance ID i-1",
        );
        assert!(matches!(e, CloudError::NoActiveLifecycleAction { .. }));
        assert!(matches!(
            classify_code("SendCommand", subject(), "InvalidInstanceId", ""),
            CloudError::AgentNotReady { .. }
        ));
        assert!(classify_code("PutParameter", subject(), "ThrottlingException", "Rate exceeded").is_retryable());
    }

    /// The texts AWS answers with, as operators have reported them.
    #[test]
    fn size_and_quota_errors_map_to_their_own_kinds() {
        let e = classify_code(
            "TerminateInstanceInAutoScalingGroup",
            subject(),
            "ValidationError",
            "Currently, desiredSize equals minSize (3). Terminating instance without replacement will violate \
             group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower \
             group's min size.",
        );
        assert!(matches!(e, CloudError::BelowMinSize { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let e = classify_code(
            "AttachInstances",
            subject(),
            "ValidationError",
            "AutoScalingGroup pool has min-size=1, max-size=1, and desired-size=1. To attach 1 instance, please \
             update the AutoScalingGroup sizes appropriately.",
        );
        assert!(matches!(e, CloudError::MaxSizeExceeded { .. }), "{e:?}");
        let e = classify_code(
            "SetDesiredCapacity",
            subject(),
            "ValidationError",
            "New SetDesiredCapacity value 3 is above max value 2 for the AutoScalingGroup.",
        );
        assert!(matches!(e, CloudError::MaxSizeExceeded { .. }), "{e:?}");
        // A detach below MinSize is not an attach over MaxSize.
        let e = classify_code(
            "DetachInstances",
            subject(),
            "ValidationError",
            "AutoScalingGroup pool has min-size=1, max-size=50, and desired-size=1. To detach 1 instance, please \
             update the AutoScalingGroup sizes appropriately.",
        );
        assert!(matches!(e, CloudError::Invalid { .. }), "{e:?}");
        let e = classify_code("DeleteAutoScalingGroup", subject(), "ScalingActivityInProgress", "in progress");
        assert!(matches!(e, CloudError::ScalingActivityInProgress { .. }) && e.is_retryable(), "{e:?}");
        let e = classify_code("CreateAutoScalingGroup", subject(), "LimitExceeded", "quota of 500 groups");
        assert!(matches!(e, CloudError::LimitExceeded { .. }) && !e.is_retryable(), "{e:?}");
        assert!(matches!(
            classify_code("PutParameter", subject(), "ParameterAlreadyExists", ""),
            CloudError::AlreadyExists { .. }
        ));
    }
}
