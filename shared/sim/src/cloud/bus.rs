//! The EventBridge bus: the cloud emits the events AWS would (Auto Scaling and SSM),
//! and the platform's rules route them to the functions.

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde_json::json;
use warmpool_core::ports::Clock;

use super::SimCloud;

/// An event the cloud puts on its EventBridge bus.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub source: &'static str,
    pub detail_type: &'static str,
    pub detail: serde_json::Value,
    pub at_ms: u64,
}

impl BusEvent {
    /// The event in the EventBridge envelope a Lambda receives.
    #[must_use]
    pub fn envelope(&self, id: u64) -> serde_json::Value {
        json!({
            "version": "0",
            "id": format!("00000000-0000-4000-8000-{id:012}"),
            "detail-type": self.detail_type,
            "source": self.source,
            "account": "123456789012",
            "region": "us-east-1",
            "time": format_time(self.at_ms),
            "resources": [],
            "detail": self.detail,
        })
    }
}

/// ISO 8601 UTC, to the second, for epoch milliseconds (as EventBridge writes `time`).
#[must_use]
pub fn format_time(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    DateTime::from_secs(secs).fmt(Format::DateTime).unwrap_or_default()
}

impl SimCloud {
    pub(super) fn emit(&self, source: &'static str, detail_type: &'static str, detail: serde_json::Value) {
        let event = BusEvent { source, detail_type, detail, at_ms: self.now_ms() };
        // The receiver lives as long as the simulation; after it, events go nowhere.
        let _ = self.inner.bus.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_simulated_time() {
        assert_eq!(format_time(super::super::EPOCH_MS), "2026-01-01T00:00:00Z");
        assert_eq!(format_time(super::super::EPOCH_MS + 90_061_999), "2026-01-02T01:01:01Z");
    }
}
