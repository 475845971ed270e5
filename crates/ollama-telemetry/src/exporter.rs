//! The embedded Prometheus exporter.
//!
//! `metrics-exporter-prometheus` (with only its `http-listener` feature) becomes the
//! process-wide `metrics` recorder and serves the text format on every GET path. Each
//! histogram of the catalogue gets its own bucket bounds, so Prometheus sees real
//! histograms (`_bucket{le=...}`) rather than client-side summaries, and alert rules can
//! use `histogram_quantile` and count observations above a bound.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::catalog::{HISTOGRAM_BUCKETS, REQUEST_DURATION_BUCKETS, describe_metrics};
use crate::error::TelemetryError;

/// Where the exporter listens by default: loopback only, on 9464 (the port OpenTelemetry's
/// Prometheus exporter uses by convention). Serving other hosts is an explicit choice.
pub const DEFAULT_EXPORTER_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// A running exporter. The listener lives as long as the process (the recorder it feeds
/// is process-global and cannot be removed), so dropping the handle does not stop it.
#[derive(Debug, Clone)]
pub struct ExporterHandle {
    addr: SocketAddr,
    handle: PrometheusHandle,
}

impl ExporterHandle {
    /// The address the exporter listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The scrape URL, e.g. `http://127.0.0.1:9464/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// The current metrics in the Prometheus text format, as a scrape would return them.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Installs the Prometheus exporter as the global `metrics` recorder and starts its HTTP
/// listener on `addr` (use [`DEFAULT_EXPORTER_ADDR`] unless you need another). Port 0 is
/// refused: the listener would bind a port nobody could find out.
///
/// Called inside a Tokio runtime, the listener runs on that runtime; otherwise it gets a
/// thread with its own. Fails if `addr` cannot be bound or another recorder is installed.
///
/// Call it before the first request of any [`InstrumentedClient`](crate::InstrumentedClient):
/// clients resolve their metric handles on first use, against the recorder installed then.
pub fn install_exporter(addr: SocketAddr) -> Result<ExporterHandle, TelemetryError> {
    let fail = |message: String| TelemetryError::Exporter { addr, message };
    if addr.port() == 0 {
        return Err(fail(
            "port 0 is not supported; choose a port (the default is 9464)".to_owned(),
        ));
    }
    let mut builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        // Histograms that are not in the catalogue still get latency-shaped buckets.
        .set_buckets(REQUEST_DURATION_BUCKETS)
        .map_err(|e| fail(e.to_string()))?;
    for (name, bounds) in HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), bounds)
            .map_err(|e| fail(e.to_string()))?;
    }

    // `build` spawns the upkeep task and binds the listener, so it needs a runtime context.
    let (recorder, handle) = if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let (recorder, exporter) = {
            let _guard = runtime.enter();
            builder.build().map_err(|e| fail(e.to_string()))?
        };
        let handle = recorder.handle();
        runtime.spawn(exporter);
        (recorder, handle)
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot create its runtime: {e}")))?;
        let (recorder, exporter) = {
            let _guard = runtime.enter();
            builder.build().map_err(|e| fail(e.to_string()))?
        };
        let handle = recorder.handle();
        std::thread::Builder::new()
            .name("ollama-telemetry-exporter".to_owned())
            .spawn(move || runtime.block_on(exporter))
            .map_err(|e| fail(format!("cannot start its thread: {e}")))?;
        (recorder, handle)
    };
    metrics::set_global_recorder(recorder).map_err(|e| fail(e.to_string()))?;
    describe_metrics();
    Ok(ExporterHandle { addr, handle })
}
