// BullMQ adapter (Node reference), run by the harness with node from <cache>/node.
// Same protocol as the Python adapters: `worker`, `enqueue --n N`, `produce --n N --rate R`.
// The job appends one 44-byte record (start time, enqueue time, worker tag) to BENCH_OUT.
// Settings: Worker concurrency 10 (BENCH_CONCURRENCY), jobs added with removeOnComplete: true
// (BullMQ's production guide), ioredis connection with maxRetriesPerRequest: null (required).
import fs from "node:fs";
import { Queue, Worker } from "bullmq";

const url = new URL(process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379/0");
const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
const queueName = process.env.BENCH_QUEUE ?? "bench";
const jobOpts = { removeOnComplete: true, removeOnFail: 1000 };

const now = () => (performance.timeOrigin + performance.now()) / 1000;

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

let fd = null;
function record(enq) {
  const start = now();
  if (fd === null) fd = fs.openSync(process.env.BENCH_OUT, "a");
  const tag = (process.env.BENCH_WORKER ?? "-").slice(0, 4).padStart(4);
  fs.writeSync(fd, `${start.toFixed(6).padStart(20)}${Number(enq).toFixed(6).padStart(19)}${tag}\n`);
}

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const cmd = process.argv[2];
  if (cmd === "worker") {
    const worker = new Worker(queueName, async (job) => record(job.data.enq), {
      connection,
      concurrency: Number(process.env.BENCH_CONCURRENCY ?? 10),
    });
    const stop = async () => {
      await worker.close();
      process.exit(0);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    await worker.waitUntilReady();
    return;
  }
  const queue = new Queue(queueName, { connection });
  const n = arg("n", 1000);
  if (cmd === "enqueue") {
    const t0 = performance.now();
    for (let i = 0; i < n; i += 1000) {
      const t = now();
      const jobs = [];
      for (let j = 0; j < Math.min(1000, n - i); j++) {
        jobs.push({ name: "noop", data: { enq: t }, opts: jobOpts });
      }
      await queue.addBulk(jobs);
    }
    emit({ seconds: (performance.now() - t0) / 1000, method: "Queue.addBulk, 1000 at a time" });
  } else if (cmd === "produce") {
    const rate = arg("rate", 100);
    const deadline = arg("deadline", 120) * 1000;
    const interval = 1000 / rate;
    const t0 = performance.now();
    let sent = 0;
    for (let i = 0; i < n; i++) {
      const target = t0 + i * interval;
      const cur = performance.now();
      if (cur - t0 > deadline) break;
      if (target > cur) await sleep(target - cur);
      await queue.add("noop", { enq: now() }, jobOpts);
      sent++;
    }
    emit({ sent });
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
  await queue.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
