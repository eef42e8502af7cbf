//! The process's metrics recorder: what every part of the process records through the `metrics` facade, kept in
//! atomics and written out at scrape time in the OpenMetrics text format by `prometheus-client`'s encoder.
//!
//! Why not `metrics-exporter-prometheus`: its histograms keep every sample, with a clock read of their own, until
//! an upkeep folds them into buckets. On the storage path (a sample per request, hundreds of thousands a second on
//! the in-memory benchmark) that cost about 7 % of the engine's throughput and 16 MiB of samples between upkeeps.
//! Here a histogram has fixed buckets: a sample is a search in 14 bounds and two atomic adds, and memory does not
//! grow with the number of samples.
//!
//! - Counters and histograms are sharded by thread (see [`SHARDS`]); gauges are the `metrics` crate's own atomic
//!   (an `AtomicU64` holding an `f64`'s bits).
//! - A metric is registered once per name and label set; the facade's handles are kept by the callers, so the hot
//!   paths never look a metric up.
//! - Counter names end in `_total` (the facade's names); OpenMetrics names the family without it, which the encoder
//!   adds back to each sample, so the samples read `s3batch_tasks_total{…}` as before.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// The content type of [`MetricsRegistry::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counters and histograms are split into this many shards, each on cache lines of its own; a thread always
/// records into the same shard, so two threads recording the same metric do not fight over one cache line (on the
/// storage path that contention cost more than the additions themselves). A scrape adds the shards up.
const SHARDS: usize = 16;

/// `u64`s per shard of a counter: one cache line pair (128 bytes), the span adjacent-line prefetching couples.
const COUNTER_STRIDE: usize = 16;

/// The shard of the calling thread: threads take shards in turn the first time they record.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// A counter kept per shard.
#[derive(Debug)]
struct ShardedCounter {
    slots: Box<[AtomicU64]>,
}

impl ShardedCounter {
    fn new() -> ShardedCounter {
        ShardedCounter { slots: (0..SHARDS * COUNTER_STRIDE).map(|_| AtomicU64::new(0)).collect() }
    }

    fn value(&self) -> u64 {
        (0..SHARDS).map(|s| self.slots[s * COUNTER_STRIDE].load(Ordering::Relaxed)).fold(0, u64::wrapping_add)
    }
}

impl CounterFn for ShardedCounter {
    fn increment(&self, value: u64) {
        self.slots[shard() * COUNTER_STRIDE].fetch_add(value, Ordering::Relaxed);
    }

    /// The counter becomes `value` (as far as increments made meanwhile allow).
    fn absolute(&self, value: u64) {
        for s in 1..SHARDS {
            self.slots[s * COUNTER_STRIDE].store(0, Ordering::Relaxed);
        }
        self.slots[0].store(value, Ordering::Relaxed);
    }
}

/// Histograms sum their samples in billionths (nanoseconds, for the durations in seconds every s3batch histogram
/// records), so a sample is an integer add instead of a compare-and-swap loop on a float; a negative sample adds
/// nothing to the sum.
const NANOS: f64 = 1e9;

/// A histogram of fixed buckets, per shard: a shard's slots hold the count of each bucket (`(bounds[i-1],
/// bounds[i]]`, the last one `+Inf`) and then its samples' sum in billionths.
#[derive(Debug)]
struct FixedHistogram {
    bounds: Arc<[f64]>,
    /// Slots per shard: the buckets and the sum, rounded up to whole cache line pairs.
    stride: usize,
    slots: Box<[AtomicU64]>,
}

impl FixedHistogram {
    fn new(bounds: Arc<[f64]>) -> FixedHistogram {
        let stride = (bounds.len() + 2).div_ceil(COUNTER_STRIDE) * COUNTER_STRIDE;
        let slots = (0..SHARDS * stride).map(|_| AtomicU64::new(0)).collect();
        FixedHistogram { bounds, stride, slots }
    }

    /// The sum, the count and each bucket's own count (`+Inf` as `f64::MAX`, as the encoder expects), from one
    /// read of each slot, so the count always equals the `+Inf` bucket.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let n = self.bounds.len() + 1;
        let mut counts = vec![0u64; n];
        let mut nanos = 0u64;
        for shard in self.slots.chunks(self.stride) {
            for (c, slot) in counts.iter_mut().zip(&shard[..n]) {
                *c += slot.load(Ordering::Relaxed);
            }
            nanos = nanos.wrapping_add(shard[n].load(Ordering::Relaxed));
        }
        let buckets: Vec<(f64, u64)> = self.bounds.iter().copied().chain([f64::MAX]).zip(counts).collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (nanos as f64 / NANOS, count, buckets)
    }
}

impl HistogramFn for FixedHistogram {
    fn record(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let base = shard() * self.stride;
        let i = self.bounds.partition_point(|b| *b < value);
        self.slots[base + i].fetch_add(1, Ordering::Relaxed);
        self.slots[base + self.bounds.len() + 1].fetch_add((value * NANOS).round() as u64, Ordering::Relaxed);
    }
}

/// One registered metric.
#[derive(Debug, Clone)]
enum Member {
    Counter(Arc<ShardedCounter>),
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<FixedHistogram>),
}

impl Member {
    fn metric_type(&self) -> MetricType {
        match self {
            Member::Counter(_) => MetricType::Counter,
            Member::Gauge(_) => MetricType::Gauge,
            Member::Histogram(_) => MetricType::Histogram,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Every histogram's upper bounds, ascending.
    bounds: Arc<[f64]>,
    members: RwLock<HashMap<Key, Member>>,
    /// Metric name → its help text.
    help: RwLock<HashMap<String, String>>,
}

/// The recorder and its rendering; clones share the metrics.
#[derive(Debug, Clone)]
pub struct MetricsRegistry {
    inner: Arc<Inner>,
}

impl MetricsRegistry {
    /// A registry whose histograms have these upper bounds (ascending, finite).
    pub fn new(bounds: &[f64]) -> Result<MetricsRegistry, String> {
        if bounds.is_empty() || bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("histogram bounds must be finite and ascending, got {bounds:?}"));
        }
        let inner = Inner { bounds: bounds.into(), ..Inner::default() };
        Ok(MetricsRegistry { inner: Arc::new(inner) })
    }

    /// The metric registered under `key`, made by `make` the first time; `None` when the key is already another
    /// kind of metric (the caller's handle then records nothing).
    fn member(&self, key: &Key, kind: MetricType, make: impl FnOnce() -> Member) -> Option<Member> {
        let same = |m: &Member| m.metric_type().as_str() == kind.as_str();
        if let Some(m) = self.inner.members.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return same(m).then(|| m.clone());
        }
        let mut members = self.inner.members.write().unwrap_or_else(|p| p.into_inner());
        let m = members.entry(key.clone()).or_insert_with(make);
        same(m).then(|| m.clone())
    }

    fn describe(&self, key: KeyName, description: SharedString) {
        self.inner
            .help
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.as_str().to_string(), description.into_owned());
    }

    /// Every metric, in the OpenMetrics text format (ending with `# EOF`).
    pub fn render(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Snapshot(self.inner.clone())));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl Recorder for MetricsRegistry {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        match self.member(key, MetricType::Counter, || Member::Counter(Arc::new(ShardedCounter::new()))) {
            Some(Member::Counter(c)) => Counter::from_arc(c),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        match self.member(key, MetricType::Gauge, || Member::Gauge(Arc::new(AtomicU64::new(0f64.to_bits())))) {
            Some(Member::Gauge(g)) => Gauge::from_arc(g),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        let make = || Member::Histogram(Arc::new(FixedHistogram::new(self.inner.bounds.clone())));
        match self.member(key, MetricType::Histogram, make) {
            Some(Member::Histogram(h)) => Histogram::from_arc(h),
            _ => Histogram::noop(),
        }
    }
}

/// What a scrape reads: every metric, grouped into families by name.
struct Snapshot(Arc<Inner>);

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Snapshot")
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let members = self.0.members.read().unwrap_or_else(|p| p.into_inner());
        let help = self.0.help.read().unwrap_or_else(|p| p.into_inner());
        let mut families: BTreeMap<&str, Vec<(&Key, &Member)>> = BTreeMap::new();
        for (key, member) in members.iter() {
            families.entry(key.name()).or_default().push((key, member));
        }
        for (name, mut family) in families {
            family.sort_by(|a, b| a.0.labels().cmp(b.0.labels()));
            let kind = family[0].1.metric_type();
            // OpenMetrics names a counter's family without `_total`; the encoder adds it to the samples.
            let family_name = match kind {
                MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            let text = help.get(name).map_or("", String::as_str);
            let mut metric = encoder.encode_descriptor(family_name, text, None, kind)?;
            for (key, member) in family {
                let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
                if labels.is_empty() {
                    encode_value(&mut metric, member)?;
                } else {
                    encode_value(&mut metric.encode_family(&labels)?, member)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(sample: &mut MetricEncoder<'_>, member: &Member) -> Result<(), fmt::Error> {
    match member {
        Member::Counter(c) => sample.encode_counter::<NoLabelSet, _, f64>(&c.value(), None),
        Member::Gauge(g) => sample.encode_gauge(&f64::from_bits(g.load(Ordering::Relaxed))),
        Member::Histogram(h) => {
            let (sum, count, buckets) = h.snapshot();
            sample.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_sum_and_count() {
        let r = MetricsRegistry::new(&[0.01, 0.1, 1.0]).unwrap();
        let h = r.register_histogram(&Key::from_parts("d_seconds", vec![metrics::Label::new("a", "b")]), &meta());
        for v in [0.005, 0.01, 0.05, 0.5, 5.0, f64::NAN] {
            h.record(v);
        }
        let text = r.render();
        for line in [
            "d_seconds_bucket{le=\"0.01\",a=\"b\"} 2",
            "d_seconds_bucket{le=\"0.1\",a=\"b\"} 3",
            "d_seconds_bucket{le=\"1.0\",a=\"b\"} 4",
            "d_seconds_bucket{le=\"+Inf\",a=\"b\"} 5",
            "d_seconds_count{a=\"b\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        let sum = text.lines().find_map(|l| l.strip_prefix("d_seconds_sum{a=\"b\"} ")).unwrap();
        assert!((sum.parse::<f64>().unwrap() - 5.565).abs() < 1e-9, "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn counters_gauges_help_and_kinds() {
        let r = MetricsRegistry::new(&[1.0]).unwrap();
        r.describe_counter("c_total".into(), None, "Things done.".into());
        let c = r.register_counter(&Key::from_parts("c_total", vec![metrics::Label::new("k", "v")]), &meta());
        c.increment(3);
        r.register_counter(&Key::from_parts("c_total", vec![metrics::Label::new("k", "v")]), &meta()).increment(2);
        r.register_gauge(&Key::from_name("g"), &meta()).set(1.5);
        // The same key as another kind records nothing and does not disturb the first.
        r.register_gauge(&Key::from_parts("c_total", vec![metrics::Label::new("k", "v")]), &meta()).set(9.0);
        let text = r.render();
        for line in ["# HELP c Things done.", "# TYPE c counter", "c_total{k=\"v\"} 5", "# TYPE g gauge", "g 1.5"] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(MetricsRegistry::new(&[1.0, 0.5]).is_err());
        assert!(MetricsRegistry::new(&[]).is_err());
    }

    #[test]
    fn shards_add_up_across_threads() {
        let r = MetricsRegistry::new(&[1.0]).unwrap();
        let c = r.register_counter(&Key::from_name("n_total"), &meta());
        let h = r.register_histogram(&Key::from_name("h"), &meta());
        std::thread::scope(|s| {
            for t in 0..20 {
                let (c, h) = (c.clone(), h.clone());
                s.spawn(move || {
                    for _ in 0..1000 {
                        c.increment(1);
                        h.record(if t % 2 == 0 { 0.5 } else { 2.0 });
                    }
                });
            }
        });
        let text = r.render();
        for line in ["n_total 20000", "h_count 20000", "h_bucket{le=\"1.0\"} 10000", "h_bucket{le=\"+Inf\"} 20000"] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        let sum = text.lines().find_map(|l| l.strip_prefix("h_sum ")).unwrap();
        assert_eq!(sum.parse::<f64>().unwrap(), 25000.0);
    }

    fn meta() -> Metadata<'static> {
        Metadata::new("test", metrics::Level::INFO, None)
    }
}
