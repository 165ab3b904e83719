//! Every file in `events/` parses as its function expects: SQS batches whose bodies
//! are signup messages (or, in `malformed`, are rejected) or re-drive messages, and
//! EventBridge events whose details the lifecycle and command-status functions type.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::{Path, PathBuf};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use warmpool_core::domain::{RedriveMessage, SignupMessage};
use warmpool_core::events::{AsgEvent, SsmEvent};

fn files(function: &str) -> Vec<PathBuf> {
    let dir = warmpool_tests::root().join("events").join(function);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no samples in {}", dir.display());
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn signup_samples_are_sqs_batches_of_signup_messages() {
    for path in files("signup") {
        let event: SqsEvent = serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!event.records.is_empty());
        let malformed = path.file_stem().unwrap() == "malformed";
        for r in event.records {
            assert!(r.message_id.is_some() && r.attributes.contains_key("MessageGroupId"), "{}", path.display());
            let parsed = SignupMessage::parse(r.body.as_deref().unwrap());
            assert_eq!(parsed.is_err(), malformed, "{}: {parsed:?}", path.display());
        }
    }
}

#[test]
fn lifecycle_samples_are_typed_auto_scaling_events() {
    for path in files("lifecycle") {
        let e: EventBridgeEvent<Value> = serde_json::from_str(&read(&path)).unwrap();
        assert_eq!(e.source, "aws.autoscaling");
        let parsed =
            AsgEvent::parse(&e.detail_type, e.detail).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert!(!matches!(parsed, AsgEvent::Other(_)), "{} is a type the function handles", path.display());
    }
}

#[test]
fn command_status_samples_are_typed_ssm_events() {
    for path in files("command-status") {
        let e: EventBridgeEvent<Value> = serde_json::from_str(&read(&path)).unwrap();
        assert_eq!(e.source, "aws.ssm");
        let parsed =
            SsmEvent::parse(&e.detail_type, e.detail).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        match parsed {
            SsmEvent::Command(c) => assert!(c.parameters.contains_key("UserId"), "{}", path.display()),
            SsmEvent::Invocation(i) => assert!(i.instance_id.starts_with("i-"), "{}", path.display()),
            SsmEvent::Other(t) => panic!("{}: unhandled type {t}", path.display()),
        }
    }
}

#[test]
fn scheduled_samples_are_scheduled_events_and_reconcile_also_takes_redrive_batches() {
    let mut batches = 0;
    for path in files("reconcile").into_iter().chain(files("pool-sizer")) {
        let raw = read(&path);
        if let Ok(batch) = serde_json::from_str::<SqsEvent>(&raw) {
            // The re-drive queue: a sweep's re-drive, or Lambda's record of a failed event.
            assert!(path.starts_with(files("reconcile")[0].parent().unwrap()), "{}", path.display());
            for r in batch.records {
                let parsed = RedriveMessage::parse(r.body.as_deref().unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if let RedriveMessage::FailedEvent { event, condition, .. } = parsed {
                    assert_eq!(condition, "RetriesExhausted");
                    let e: EventBridgeEvent<Value> = serde_json::from_value(event).unwrap();
                    AsgEvent::parse(&e.detail_type, e.detail).unwrap();
                }
            }
            batches += 1;
            continue;
        }
        let e: EventBridgeEvent<Value> = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            (e.source.as_str(), e.detail_type.as_str()),
            ("aws.events", "Scheduled Event"),
            "{}",
            path.display()
        );
    }
    assert_eq!(batches, 2, "a re-drive and a failed event");
}
