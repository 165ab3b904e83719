//! Function invocations on the simulated platform, and the faults the cloud injects
//! into the AWS calls they make: a crash right after a call, a retryable or a
//! permanent error instead of a call, an error after the call took effect (its response
//! lost), throttling.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

tokio::task_local! {
    static INVOCATION: Arc<Invocation>;
}

/// One running invocation. When the cloud decides it dies, it is marked crashed and
/// its next AWS call never returns; the platform drops it, as a dead process.
#[derive(Debug, Default)]
pub struct Invocation {
    /// The function invoked (for the record of who called what).
    pub(super) function: &'static str,
    crashed: AtomicBool,
    died: Notify,
    /// Calls made so far, by operation: the n-th call of an operation in an invocation
    /// names a crash point independently of what other invocations did meanwhile.
    calls: Mutex<BTreeMap<String, usize>>,
    /// An operation whose effect is to stand but whose response is lost
    /// ([`FaultKind::AppliedThenError`]), until that call answers.
    lose_response: Mutex<Option<String>>,
    /// The group another caller attaches the instance into just before this
    /// invocation's `AttachInstances` takes effect ([`FaultKind::AttachedFirst`]).
    attached_first: Mutex<Option<AttachFirst>>,
}

/// Another caller's attach to make first ([`FaultKind::AttachedFirst`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct AttachFirst {
    /// The group it attaches into (`None`: the one the call names).
    pub(super) into: Option<&'static str>,
}

impl Invocation {
    pub(super) fn current() -> Option<Arc<Self>> {
        INVOCATION.try_with(Arc::clone).ok()
    }

    pub(super) fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
    }

    /// Counts a call of `op` and returns which of this invocation's calls of `op` it is (0-based).
    pub(super) fn nth_call(&self, op: &str) -> usize {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let n = calls.entry(op.to_owned()).or_default();
        *n += 1;
        *n - 1
    }

    /// Marks the call of `op` under way: it takes effect, and then answers an error.
    pub(super) fn lose_response_of(&self, op: &str) {
        *self.lose_response.lock().unwrap_or_else(PoisonError::into_inner) = Some(op.to_owned());
    }

    pub(super) fn attach_first(&self, into: Option<&'static str>) {
        *self.attached_first.lock().unwrap_or_else(PoisonError::into_inner) = Some(AttachFirst { into });
    }

    /// Whether another caller is to attach the instance first, and into which group
    /// (`None`: the group this call names); once.
    pub(super) fn take_attached_first(&self) -> Option<AttachFirst> {
        self.attached_first.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Whether the call of `op` that just took effect is to answer an error (once).
    pub(super) fn response_lost(&self, op: &str) -> bool {
        let mut lose = self.lose_response.lock().unwrap_or_else(PoisonError::into_inner);
        if lose.as_deref() == Some(op) {
            *lose = None;
            return true;
        }
        false
    }

    /// Called at the start of every AWS call: a crashed invocation stops here forever.
    pub(super) async fn stop_if_crashed(&self) {
        if self.crashed.load(Ordering::SeqCst) {
            self.died.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

/// Each function's `Timeout` in `template.yaml` (a test holds them together): Lambda
/// stops an invocation that runs longer, as if it had died.
#[must_use]
pub fn timeout_s(function: &str) -> u64 {
    match function {
        "signup" => 15,
        "lifecycle" => 300,
        _ => 60,
    }
}

/// Runs a handler of `function` as one invocation. `None` when the invocation died or
/// ran past the function's timeout (its result, if any, is lost, as a crashed or
/// timed-out Lambda's would be).
pub async fn invoke<F: Future>(function: &'static str, handler: F) -> Option<F::Output> {
    let invocation = Arc::new(Invocation { function, ..Invocation::default() });
    let run = INVOCATION.scope(Arc::clone(&invocation), handler);
    let timeout = tokio::time::sleep(std::time::Duration::from_secs(timeout_s(function)));
    tokio::select! {
        out = run => (!invocation.crashed.load(Ordering::SeqCst)).then_some(out),
        () = invocation.died.notified() => {
            tracing::info!(function, "invocation died (injected crash)");
            None
        }
        () = timeout => {
            tracing::warn!(function, "invocation timed out (Lambda stops it)");
            invocation.crash();
            None
        }
    }
}

/// How an injected fault hits one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The call takes effect, then the invocation dies.
    CrashAfter,
    /// The call fails with a retryable error (`Throttled`) and has no effect.
    Retryable,
    /// The call fails with a permanent error (`Invalid`) and has no effect.
    Permanent,
    /// The call takes effect, and then answers an error (`Transient`): the response was
    /// lost (a timeout, a dropped connection), so the caller cannot tell it from a call
    /// that did nothing. On a call that changes nothing it is a plain retryable error.
    AppliedThenError,
    /// Just before an `AttachInstances` takes effect, another caller attaches the same
    /// instance: into the same group (`None`: a duplicate of this invocation racing it
    /// and winning), or into the named group (someone taking the instance by hand).
    /// The call then meets the state that left, as AWS answers a late attach. On any
    /// other call it is a plain retryable error.
    AttachedFirst(Option<&'static str>),
}

/// Faults injected into the AWS calls made inside invocations (never into the cloud's
/// own background work).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share of calls after which the invocation dies.
    pub crash_rate: f64,
    /// Share of attempts answered `ThrottlingException`. Like the SDK's retry mode, a
    /// throttled attempt is retried with backoff, up to 5 attempts, before the call fails.
    pub throttle_rate: f64,
    /// One fault at the n-th call (0-based, counting calls inside invocations).
    pub at_call: Option<(u64, FaultKind)>,
    /// A second one, at a later call: a fault inside the recovery from the first.
    pub then_at_call: Option<(u64, FaultKind)>,
}
