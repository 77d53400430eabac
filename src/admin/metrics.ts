// Prometheus metrics: the plugins' (and the core's, core.ts) as prom-client collectors that read
// their value when scraped, so the message path pays nothing.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Metric } from '../plugin/index.js';

/** How often, ms, the event loop's lag (nodejs_eventloop_lag_*) is sampled. */
const EVENT_LOOP_SAMPLE_MS = 100;

export function createMetricsRegistry(metrics: readonly Metric[]): Registry {
  // A registry of its own: the process-wide default one would mix servers started in one process.
  const registry = new Registry();
  // The event-loop lag is sampled every 100 ms rather than prom-client's 10: each sample is a wake-up
  // of an otherwise idle loop, at 10 ms a hundred a second, about half of what an idle Parley costs.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  for (const metric of metrics) {
    const settings = { name: metric.name, help: metric.help, labelNames: metric.labelNames ?? [], registers: [registry] };
    if (metric.kind === 'gauge') {
      new Gauge({
        ...settings,
        collect() {
          const value = metric.read();
          if (typeof value === 'number') return this.set(value);
          this.reset();
          for (const { labels, value: count } of value) this.set(labels, count);
        },
      });
    } else {
      // A counter cannot be set, only increased: it is zeroed and raised to the total it mirrors.
      new Counter({
        ...settings,
        collect() {
          const value = metric.read();
          this.reset();
          if (typeof value === 'number') return this.inc(value);
          for (const { labels, value: count } of value) this.inc(labels, count);
        },
      });
    }
  }
  return registry;
}
