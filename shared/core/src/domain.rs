//! Domain types: validated identifiers, the signup message, and the per-user record
//! that lives in the tags of the user's Auto Scaling group.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FlowError;

/// Longest user id accepted. The id becomes part of an ASG name, of SSM parameter
/// names and of an SSM document parameter, so it is kept short and plain.
pub const MAX_ID_LEN: usize = 64;

/// A validated identifier (user id or signup id): 1 to 64 characters of ASCII letters,
/// digits, `-` and `_`, starting with a letter or digit.
///
/// Anything that could be read by a shell, a path or an ARN differently (spaces, `/`,
/// `$`, quotes, unicode look-alikes) is rejected here, before it reaches any AWS call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    /// Validates `raw` as an identifier; `what` names the field in the error.
    pub fn parse(what: &str, raw: &str) -> Result<Self, FlowError> {
        let valid_start = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let valid_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if raw.is_empty() || raw.len() > MAX_ID_LEN || !valid_start || !valid_chars {
            return Err(FlowError::InvalidInput(format!(
                "{what} must be 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-' or '_', \
                 starting with a letter or digit; got {:?}",
                truncate_for_log(raw)
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Id::parse("id", &raw).map_err(serde::de::Error::custom)
    }
}

/// Shortens untrusted input before it is logged.
#[must_use]
pub fn truncate_for_log(raw: &str) -> String {
    const MAX: usize = 80;
    if raw.chars().count() <= MAX {
        raw.to_owned()
    } else {
        let head: String = raw.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// An EC2 instance id: `i-` and 8 or 17 lowercase hex digits.
#[must_use]
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// An SSM command id: a UUID (36 characters of hex digits and dashes).
#[must_use]
pub fn is_command_id(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// The JSON body of a message on the signup queue.
///
/// ```json
/// {"kind": "signup", "user_id": "u-1234", "signup_id": "s-5678"}
/// {"kind": "delete", "user_id": "u-1234", "signup_id": "s-5678"}
/// {"kind": "resume", "user_id": "u-1234", "attempt": 2}
/// ```
/// (`resume` is what the reconcile sweep sends for a user stalled while claiming: it
/// never creates a group, so it cannot bring a deleted user back.)
/// `kind` defaults to `signup`. Unknown fields are rejected so that a producer's typo
/// is found at once instead of silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignupMessage {
    /// Give this user a ready host.
    Signup { user_id: Id, signup_id: Id },
    /// Tear the user's group (and its instance) down. `signup_id` must be the one the
    /// user signed up with: a delete that names another is refused (dead-lettered), so a
    /// stray or forged delete cannot tear down a user it does not know.
    Delete { user_id: Id, signup_id: Id },
    /// Finish getting this existing user an instance (a failover's next attempt, or the
    /// reconcile sweep's re-drive). `attempt`, when given, is the attempt the sender
    /// recorded: a record read that does not show it yet is a stale read, read again.
    Resume {
        user_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
}

impl SignupMessage {
    /// Parses and validates a message body.
    pub fn parse(body: &str) -> Result<Self, FlowError> {
        const MAX_BODY: usize = 4096;
        if body.len() > MAX_BODY {
            return Err(FlowError::InvalidInput(format!(
                "message body is {} bytes; a signup message is at most {MAX_BODY}",
                body.len()
            )));
        }
        let mut value: serde_json::Value = serde_json::from_str(body).map_err(|e| {
            FlowError::InvalidInput(format!("message body is not JSON ({e}): {:?}", truncate_for_log(body)))
        })?;
        if let Some(obj) = value.as_object_mut() {
            obj.entry("kind").or_insert_with(|| "signup".into());
        }
        serde_json::from_value(value)
            .map_err(|e| FlowError::InvalidInput(format!("message body is not a signup message: {e}")))
    }

    #[must_use]
    pub fn user_id(&self) -> &Id {
        match self {
            Self::Signup { user_id, .. } | Self::Delete { user_id, .. } | Self::Resume { user_id, .. } => user_id,
        }
    }
}

/// A message on the re-drive queue (a standard queue the reconcile function consumes).
///
/// Two kinds arrive there:
/// - the sweep's re-drive of one stalled user, `{"kind": "redrive", "user_id": "u-1234"}`;
/// - Lambda's invocation record of an event lifecycle or command-status still failed on
///   after its asynchronous retries (their on-failure destination), which carries the
///   event as `requestPayload` (Lambda Developer Guide, "Capturing records of Lambda
///   asynchronous invocations").
#[derive(Debug, Clone, PartialEq)]
pub enum RedriveMessage {
    /// Re-drive this stalled user.
    User { user_id: Id },
    /// An EventBridge event a function gave up on: the function's ARN, why
    /// (`requestContext.condition`, such as `RetriesExhausted`), and the event.
    FailedEvent { function_arn: String, condition: String, event: serde_json::Value },
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RedriveBody {
    Redrive { user_id: Id },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationRecord {
    request_context: InvocationContext,
    request_payload: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationContext {
    #[serde(default)]
    function_arn: String,
    #[serde(default)]
    condition: String,
}

impl RedriveMessage {
    /// The body of a sweep's re-drive of `user_id`.
    #[must_use]
    pub fn user_body(user_id: &Id) -> String {
        serde_json::json!({ "kind": "redrive", "user_id": user_id.as_str() }).to_string()
    }

    /// Parses a message body: a sweep's re-drive, or Lambda's invocation record.
    pub fn parse(body: &str) -> Result<Self, FlowError> {
        const MAX_BODY: usize = 262_144; // SQS's largest message
        if body.len() > MAX_BODY {
            return Err(FlowError::InvalidInput(format!(
                "re-drive message is {} bytes, above SQS's limit",
                body.len()
            )));
        }
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| {
            FlowError::InvalidInput(format!("re-drive message is not JSON ({e}): {:?}", truncate_for_log(body)))
        })?;
        if value.get("requestPayload").is_some() {
            let record: InvocationRecord = serde_json::from_value(value).map_err(|e| {
                FlowError::InvalidInput(format!("re-drive message is not a Lambda invocation record: {e}"))
            })?;
            return Ok(Self::FailedEvent {
                function_arn: record.request_context.function_arn,
                condition: record.request_context.condition,
                event: record.request_payload,
            });
        }
        match serde_json::from_value(value) {
            Ok(RedriveBody::Redrive { user_id }) => Ok(Self::User { user_id }),
            Err(e) => Err(FlowError::InvalidInput(format!(
                "re-drive message is neither a re-drive nor a Lambda invocation record: {e}"
            ))),
        }
    }
}

/// Where a user's host came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// Claimed from the warm pool.
    Warm,
    /// Launched fresh by the user's group from the launch template.
    Cold,
}

impl Path {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Cold => "cold",
        }
    }
}

/// Where a user is in the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserState {
    /// The user needs an instance: claim one from the pool, or fall back to cold.
    Claiming,
    /// An instance is attached (warm) or being launched (cold); the init command is
    /// pending or running.
    Initializing,
    /// The init command succeeded: the host is the user's.
    Ready,
    /// Attempts are exhausted; see the reason.
    Failed,
}

impl UserState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claiming => "claiming",
            Self::Initializing => "initializing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "claiming" => Some(Self::Claiming),
            "initializing" => Some(Self::Initializing),
            "ready" => Some(Self::Ready),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Failed)
    }

    /// The states of a user still on the way to an instance.
    pub const IN_FLIGHT: &[Self] = &[Self::Claiming, Self::Initializing];
}

/// Tag keys of the per-user record on the user's Auto Scaling group.
pub mod tag {
    pub const USER_ID: &str = "warmpool:user-id";
    pub const SIGNUP_ID: &str = "warmpool:signup-id";
    pub const STATE: &str = "warmpool:state";
    pub const PATH: &str = "warmpool:path";
    pub const ATTEMPT: &str = "warmpool:attempt";
    /// Earlier attempts that ran cold: they used no pool instance, so they do not count
    /// against `WARM_ATTEMPTS`.
    pub const COLD_ATTEMPTS: &str = "warmpool:cold-attempts";
    /// The instance currently serving (or being initialised for) the user.
    pub const INSTANCE: &str = "warmpool:instance";
    /// A pool instance this user holds the claim on but has not attached yet.
    pub const CLAIMED: &str = "warmpool:claimed";
    /// The host Auto Scaling replaced (a failed health check, a retirement) with the one
    /// in `INSTANCE`, for a user who was ready.
    pub const REPLACED: &str = "warmpool:replaced";
    /// The latest init command sent for this user.
    pub const COMMAND_ID: &str = "warmpool:command-id";
    /// The instance `COMMAND_ID` was sent to: tells a duplicate launch event (init
    /// already sent there) from the launch of a replacement.
    pub const COMMAND_INSTANCE: &str = "warmpool:command-instance";
    pub const REQUESTED_AT: &str = "warmpool:requested-at";
    pub const READY_AT: &str = "warmpool:ready-at";
    /// When a step last wrote the record: the reconcile sweep's measure of a stall.
    pub const UPDATED_AT: &str = "warmpool:updated-at";
    pub const REASON: &str = "warmpool:reason";
    /// `<attempt>:<ms>`: since when this attempt has waited for a pool instance (none to
    /// claim at its first look).
    pub const WAITING: &str = "warmpool:waiting";
    /// On the pool group only: `warmpool drain` is under way or done (signups take no
    /// pool instance, the pool-sizer leaves the pool alone). Its value is the sizes to
    /// restore on `warmpool resume` (see `operator::drain`).
    pub const DRAINING: &str = "warmpool:draining";
    /// On the pool group only: the pool-sizer's last decision (see
    /// `flow::sizer_record`), for `warmpool status`.
    pub const SIZER: &str = "warmpool:sizer";
}

/// The per-user record, read from and written to the tags of the user's group.
///
/// AWS already keeps the group durably; its name (derived from the user id) makes
/// `CreateAutoScalingGroup` the atomic "first signup wins", and its tags carry the
/// rest. No extra database is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: String,
    pub signup_id: String,
    pub state: UserState,
    pub path: Path,
    pub attempt: u32,
    /// Earlier attempts that ran cold (see [`tag::COLD_ATTEMPTS`]).
    pub cold_attempts: u32,
    pub instance: Option<String>,
    pub claimed: Option<String>,
    pub command_id: Option<String>,
    pub command_instance: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub requested_at_ms: u64,
    pub ready_at_ms: Option<u64>,
    pub updated_at_ms: u64,
    pub reason: Option<String>,
    /// The host the current one replaced (see [`tag::REPLACED`]).
    pub replaced: Option<String>,
    /// The attempt that waited for the pool, and since when (see [`tag::WAITING`]).
    pub waiting: Option<(u32, u64)>,
}

impl UserRecord {
    /// A fresh record for a new signup.
    #[must_use]
    pub fn new(user_id: &Id, signup_id: &Id, requested_at_ms: u64) -> Self {
        Self {
            user_id: user_id.to_string(),
            signup_id: signup_id.to_string(),
            state: UserState::Claiming,
            path: Path::Warm,
            attempt: 1,
            cold_attempts: 0,
            instance: None,
            claimed: None,
            command_id: None,
            command_instance: None,
            requested_at_ms,
            ready_at_ms: None,
            updated_at_ms: requested_at_ms,
            reason: None,
            replaced: None,
            waiting: None,
        }
    }

    /// Since when this attempt has waited for a pool instance, if it has.
    #[must_use]
    pub fn waiting_since(&self) -> Option<u64> {
        self.waiting.filter(|(attempt, _)| *attempt == self.attempt).map(|(_, since)| since)
    }

    /// Whether this attempt may be served from the pool: pool instances used so far
    /// (attempts that did not run cold, this one included) within `warm_attempts`.
    #[must_use]
    pub fn warm_allowed(&self, warm_attempts: u32) -> bool {
        self.attempt.saturating_sub(self.cold_attempts) <= warm_attempts
    }

    /// Reads the record from a group's tags. `None` when the group carries no
    /// warmpool record (not one of ours) or the record is unreadable.
    #[must_use]
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Self> {
        let get = |k: &str| tags.get(k).filter(|v| !v.is_empty()).cloned();
        // What comes back from AWS is checked as strictly as what came in: the ids reach
        // SSM parameters, tags and the ready queue; the instance ids reach SSM and
        // Parameter Store names.
        let id = |k: &str| get(k).filter(|v| Id::parse(k, v).is_ok());
        let instance = |k: &str| match get(k) {
            Some(v) if is_instance_id(&v) => Ok(Some(v)),
            Some(_) => Err(()),
            None => Ok(None),
        };
        Some(Self {
            user_id: id(tag::USER_ID)?,
            signup_id: id(tag::SIGNUP_ID)?,
            state: UserState::parse(&get(tag::STATE)?)?,
            path: match get(tag::PATH).as_deref() {
                Some("cold") => Path::Cold,
                _ => Path::Warm,
            },
            attempt: get(tag::ATTEMPT)?.parse().ok()?,
            cold_attempts: get(tag::COLD_ATTEMPTS).and_then(|v| v.parse().ok()).unwrap_or_default(),
            instance: instance(tag::INSTANCE).ok()?,
            claimed: instance(tag::CLAIMED).ok()?,
            command_id: match get(tag::COMMAND_ID) {
                Some(v) if !is_command_id(&v) => return None,
                v => v,
            },
            command_instance: instance(tag::COMMAND_INSTANCE).ok()?,
            requested_at_ms: get(tag::REQUESTED_AT)?.parse().ok()?,
            ready_at_ms: get(tag::READY_AT).and_then(|v| v.parse().ok()),
            updated_at_ms: get(tag::UPDATED_AT).and_then(|v| v.parse().ok()).unwrap_or_default(),
            reason: get(tag::REASON),
            replaced: get(tag::REPLACED),
            waiting: get(tag::WAITING).and_then(|v| {
                let (attempt, since) = v.split_once(':')?;
                Some((attempt.parse().ok()?, since.parse().ok()?))
            }),
        })
    }

    /// The full tag set for this record. Absent optional values are written as empty
    /// strings so that an update clears them.
    #[must_use]
    pub fn to_tags(&self) -> Vec<(String, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            (tag::USER_ID.into(), self.user_id.clone()),
            (tag::SIGNUP_ID.into(), self.signup_id.clone()),
            (tag::STATE.into(), self.state.as_str().into()),
            (tag::PATH.into(), self.path.as_str().into()),
            (tag::ATTEMPT.into(), self.attempt.to_string()),
            (tag::COLD_ATTEMPTS.into(), self.cold_attempts.to_string()),
            (tag::INSTANCE.into(), opt(&self.instance)),
            (tag::CLAIMED.into(), opt(&self.claimed)),
            (tag::COMMAND_ID.into(), opt(&self.command_id)),
            (tag::COMMAND_INSTANCE.into(), opt(&self.command_instance)),
            (tag::REQUESTED_AT.into(), self.requested_at_ms.to_string()),
            (tag::READY_AT.into(), self.ready_at_ms.map(|v| v.to_string()).unwrap_or_default()),
            (tag::UPDATED_AT.into(), self.updated_at_ms.to_string()),
            (tag::REASON.into(), opt(&self.reason)),
            (tag::REPLACED.into(), opt(&self.replaced)),
            (tag::WAITING.into(), self.waiting.map(|(a, t)| format!("{a}:{t}")).unwrap_or_default()),
        ]
    }
}

/// The message put on the "ready" queue when a user's host is initialised.
/// Delivery is at least once: consumers de-duplicate on `user_id` and `instance_id` (a
/// user whose host was replaced gets a second message, for the new host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyMessage {
    pub user_id: String,
    pub signup_id: String,
    pub instance_id: String,
    pub path: Path,
    pub attempts: u32,
    /// From the signup message being sent to the host being initialised.
    pub ready_after_s: f64,
    /// Present when this host replaces the user's earlier one (Auto Scaling replaced it):
    /// the earlier host's instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_instance_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_plain_and_reject_shell_and_unicode() {
        assert!(Id::parse("user_id", "u-1234_ab").is_ok());
        for bad in ["", "-x", "a b", "a;rm -rf /", "$(id)", "ünïcode", "a/b", &"x".repeat(65)] {
            assert!(Id::parse("user_id", bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn signup_message_parses_kinds_and_defaults_to_signup() {
        let m = SignupMessage::parse(r#"{"user_id":"u1","signup_id":"s1"}"#).unwrap();
        assert!(matches!(m, SignupMessage::Signup { .. }));
        let d = SignupMessage::parse(r#"{"kind":"delete","user_id":"u1","signup_id":"s1"}"#).unwrap();
        assert_eq!(
            d,
            SignupMessage::Delete { user_id: Id::parse("u", "u1").unwrap(), signup_id: Id::parse("s", "s1").unwrap() }
        );
        assert!(SignupMessage::parse(r#"{"kind":"delete","user_id":"u1"}"#).is_err(), "a delete names its signup");
        for bad in [
            "not json",
            r#"{"user_id":"u1"}"#,
            r#"{"user_id":"u 1","signup_id":"s1"}"#,
            r#"{"user_id":"u1","signup_id":"s1","extra":1}"#,
            r#"{"kind":"reboot","user_id":"u1"}"#,
            r#"{"user_id":7,"signup_id":"s1"}"#,
            "[]",
        ] {
            assert!(matches!(SignupMessage::parse(bad), Err(FlowError::InvalidInput(_))), "{bad}");
        }
        let huge = format!(r#"{{"user_id":"u1","signup_id":"{}"}}"#, "s".repeat(10_000));
        assert!(SignupMessage::parse(&huge).is_err());
    }

    #[test]
    fn record_round_trips_through_tags() {
        let mut r = UserRecord::new(&Id::parse("u", "u1").unwrap(), &Id::parse("s", "s1").unwrap(), 42);
        r.instance = Some("i-0a1b2c3d4e5f60001".into());
        r.command_id = Some("00000001-0000-4000-8000-00009e3779b1".into());
        r.path = Path::Cold;
        r.attempt = 3;
        r.waiting = Some((3, 1_000));
        let tags: BTreeMap<_, _> = r.to_tags().into_iter().collect();
        assert_eq!(tags[tag::WAITING], "3:1000");
        assert_eq!(UserRecord::from_tags(&tags), Some(r.clone()));
        // A wait counts for its own attempt only; an unreadable one is no wait.
        assert_eq!(r.waiting_since(), Some(1_000));
        r.attempt = 4;
        assert_eq!(r.waiting_since(), None);
        let mut garbled = tags.clone();
        garbled.insert(tag::WAITING.to_owned(), "3-1000".to_owned());
        assert_eq!(UserRecord::from_tags(&garbled).and_then(|r| r.waiting), None);
        assert_eq!(UserRecord::from_tags(&BTreeMap::new()), None);
        // What comes back from AWS is parsed as strictly as what came in.
        let hostile = [
            (tag::USER_ID, "u 1; reboot"),
            (tag::USER_ID, "u-1\n"),
            (tag::SIGNUP_ID, "$(id)"),
            (tag::INSTANCE, "i-0a1b2c3d; rm -rf /"),
            (tag::CLAIMED, "../../other/claim"),
            (tag::COMMAND_INSTANCE, "i-XYZ"),
            (tag::COMMAND_ID, "not-a-command-id"),
        ];
        for (key, value) in hostile {
            let mut bad = tags.clone();
            bad.insert(key.to_owned(), value.to_owned());
            assert_eq!(UserRecord::from_tags(&bad), None, "{key} = {value:?} was read");
        }
        let mut no_signup = tags.clone();
        no_signup.remove(tag::SIGNUP_ID);
        assert_eq!(UserRecord::from_tags(&no_signup), None);
        assert!(is_instance_id("i-0a1b2c3d") && is_instance_id("i-0a1b2c3d4e5f60001") && !is_instance_id("i-0A1B2C3D"));
        assert!(
            is_command_id("00000001-0000-4000-8000-00009e3779b1")
                && !is_command_id("00000001_0000-4000-8000-00009e3779b1")
        );
    }
}
