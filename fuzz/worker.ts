/**
 * A fuzz worker (a child process of fuzz/run.ts): it receives cases over IPC, runs each (fuzz/load-case.ts) and
 * answers with what happened and its peak memory. A crash, an abort or a hang takes only this process down; the
 * parent sees it, records the case and starts a new worker.
 */
import { runCase, type CaseResult, type FuzzCase } from './load-case.js';

export interface WorkerReply extends CaseResult {
  id: number;
  maxRssBytes: number;
}

process.on('message', (msg: FuzzCase) => {
  void runCase(msg).then((r) => {
    const reply: WorkerReply = { id: msg.id, ...r, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
    process.send!(reply);
  });
});
process.send!({ ready: true });
