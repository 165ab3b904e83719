//! warmpool-lambda: the Lambda boundary the five functions share, and nothing of AWS's
//! SDKs (the local platform in `warmpool-sim` drives the same handlers).
//!
//! - [`HandlerError`]: a [`FlowError`] as Lambda reports it, converted into a
//!   [`Diagnostic`] in one place, with the stable `errorType` dashboards group by
//!   (`Retryable`, `NonRetryable`, `InvalidInput`);
//! - [`serve`]: the runtime boilerplate every `main.rs` would repeat: tracing (JSON in
//!   Lambda), the function's own configuration and its cloud once per cold start, then
//!   the runtime loop;
//! - [`queue_records`]: an SQS event's records as the flow reads them.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::level_filters::LevelFilter;
use warmpool_core::{Config, FlowError, Function};

pub use lambda_runtime::{Context, Diagnostic, LambdaEvent};

mod sqs;
pub use sqs::{queue_records, queue_url};

/// A handler's failure: the flow's error, reported to Lambda as a [`Diagnostic`]. An
/// error makes Lambda retry (SQS redelivers the message; an asynchronous EventBridge
/// invocation is retried twice).
#[derive(Debug)]
pub struct HandlerError(pub FlowError);

impl From<FlowError> for HandlerError {
    fn from(e: FlowError) -> Self {
        Self(e)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Self { error_type: e.0.kind().to_owned(), error_message: e.0.to_string() }
    }
}

/// The handler's result type.
pub type HandlerResult<T> = Result<T, HandlerError>;

/// Logs a failed invocation with its kind, and hands the error on.
pub fn log_failure<T>(function: Function, result: Result<T, FlowError>) -> HandlerResult<T> {
    result.map_err(|err| {
        tracing::error!(function = function.name(), error = %err, kind = err.kind(), "invocation failed");
        HandlerError(err)
    })
}

/// Runs `function` on Lambda: tracing first (JSON when the function's `LoggingConfig`
/// says so, the level from `AWS_LAMBDA_LOG_LEVEL`), then the function's own
/// configuration (a missing or malformed variable fails the init phase with a message
/// naming it), then its cloud (`build`, once per cold start), then the runtime loop
/// calling `handler` for every event.
pub async fn serve<C, B, H, E, R>(function: Function, build: B, handler: H) -> Result<(), lambda_runtime::Error>
where
    B: AsyncFnOnce(&Config) -> C,
    H: AsyncFn(&C, &Config, LambdaEvent<E>) -> HandlerResult<R>,
    E: DeserializeOwned,
    R: Serialize,
{
    init_tracing(std::io::stdout);
    let cfg = Config::from_env(function).map_err(|e| {
        tracing::error!(function = function.name(), error = %e, "configuration error; the function cannot start");
        e
    })?;
    let cloud = build(&cfg).await;
    // Boxed: the runtime's future nested in this one is too deep a type for the
    // compiler's layout of an async `main` otherwise.
    Box::pin(lambda_runtime::run(lambda_runtime::service_fn(|event: LambdaEvent<E>| handler(&cloud, &cfg, event))))
        .await
}

/// Logs as Lambda's advanced logging controls expect: JSON when `AWS_LAMBDA_LOG_FORMAT`
/// is `JSON` (the template's `LogFormat`), at the level of `AWS_LAMBDA_LOG_LEVEL` (else
/// `RUST_LOG`, else INFO), and with a `timestamp` in RFC 3339 on every line, without which
/// Lambda does not filter a JSON line by level. (The runtime's default subscriber writes
/// no time.)
pub fn init_tracing<W>(writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let level = level.ok().and_then(|l| l.parse::<LevelFilter>().ok()).unwrap_or(LevelFilter::INFO);
    init_tracing_with(json, level, writer);
}

/// [`init_tracing`]'s subscriber, with the format and level given.
pub fn log_subscriber<W>(json: bool, level: LevelFilter, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_target(false).with_max_level(level).with_writer(writer);
    if json { Box::new(builder.json().finish()) } else { Box::new(builder.finish()) }
}

fn init_tracing_with<W>(json: bool, level: LevelFilter, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(log_subscriber(json, level, writer));
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::Value;
    use warmpool_core::CloudError;

    use super::*;

    #[tokio::test]
    async fn a_configuration_error_fails_the_start_and_names_the_variable() {
        assert!(std::env::var("POOL_ASG_NAME").is_err(), "run this test without the functions' variables set");
        let built = Cell::new(false);
        let err = serve(
            Function::Signup,
            async |_: &Config| built.set(true),
            async |(): &(), _: &Config, _: LambdaEvent<Value>| -> HandlerResult<()> { Ok(()) },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("POOL_ASG_NAME"), "{err}");
        assert!(!built.get(), "no cloud is built without a configuration");
    }

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_log_lines_carry_the_timestamp_and_level_lambda_filters_on() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        tracing::subscriber::with_default(log_subscriber(true, LevelFilter::INFO, move || sink.clone()), || {
            tracing::info!(user_id = "u-1", "hello");
            tracing::debug!("below the level");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["user_id"], "u-1");
        let ts = line["timestamp"].as_str().expect("a timestamp");
        // RFC 3339: 2026-11-28T05:03:32.648040Z
        assert!(ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.as_bytes()[10] == b'T' && ts.ends_with('Z'), "{ts}");
    }

    #[test]
    fn flow_errors_become_diagnostics_with_a_stable_type() {
        let cases = [
            (FlowError::InvalidInput("bad".into()), "InvalidInput"),
            (FlowError::NotYet("agent".into()), "Retryable"),
            (FlowError::Cloud(CloudError::Throttled { operation: "X".into() }), "Retryable"),
            (FlowError::Cloud(CloudError::Invalid { operation: "X".into(), message: "m".into() }), "NonRetryable"),
        ];
        for (err, kind) in cases {
            let message = err.to_string();
            let d = Diagnostic::from(HandlerError::from(err));
            assert_eq!((d.error_type.as_str(), d.error_message), (kind, message));
        }
    }
}
