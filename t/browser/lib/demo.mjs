// The demo of examples/nginx.conf, started for a browser test: the same
// configuration, rewritten to free loopback ports and a temporary
// directory, so that it runs next to "make run" and other tests.
//
//   const demo = await Demo.start();     // demo.url, demo.dir
//   await demo.deliver("alice", "stripe-prod", 503);
//   await demo.restart();                // same ports, same state file
//   await demo.stop();                   // fails on [alert]/[crit]/[emerg]

import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)),
                                 "../../..");
const NGINX = process.env.MITTE_NGINX || process.env.NGINX
              || "/usr/sbin/nginx";
const MODULE = path.resolve(ROOT, process.env.MITTE_MODULE
                                  || "build/ngx_http_mitte_module.so");

// below the kernel's ephemeral range, as t/lib/Mitte/Port.pm does: a port
// the kernel gives to an outgoing connection can never be one of these
function ephemeralLow() {
  try {
    const t = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8");
    return parseInt(t, 10) || 32768;
  } catch (e) {
    return 32768;
  }
}

const taken = new Set();

function tryListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(0));
    s.listen({ host: "127.0.0.1", port, exclusive: true }, () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

export async function freePort() {
  const low = ephemeralLow();
  for (let i = 0; i < 2000; i++) {
    const port = low > 12000 ? 10000 + Math.floor(Math.random() * (low - 10000)) : 0;
    if (port && taken.has(port)) continue;
    const got = await tryListen(port);
    if (got && !taken.has(got)) { taken.add(got); return got; }
  }
  throw new Error("cannot find a free loopback port");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// examples/nginx.conf with its ports and paths replaced; throws when the
// demo configuration no longer has what is replaced here
export function demoConf(dir, port, targetPort) {
  let conf = fs.readFileSync(path.join(ROOT, "examples/nginx.conf"), "utf8");
  const swaps = [
    [/^load_module \S+;/m, `load_module ${MODULE};`],
    [/127\.0\.0\.1:8080/g, `127.0.0.1:${port}`],
    [/127\.0\.0\.1:8081/g, `127.0.0.1:${targetPort}`],
    [/build\/run\//g, `${dir}/`],
    [/auth_basic_user_file htpasswd;/g,
     `auth_basic_user_file ${ROOT}/examples/htpasswd;`],
    [/root(\s+)examples\/dashboard;/g, `root$1${ROOT}/examples/dashboard;`],
  ];
  for (const [re, to] of swaps) {
    if (!re.test(conf)) throw new Error(`examples/nginx.conf: no ${re} to replace`);
    conf = conf.replace(re, to);
  }
  const head = (process.getuid && process.getuid() === 0 ? "user root root;\n" : "")
    + `error_log ${dir}/error.log info;\n`;
  conf = head + conf.replace(/access_log off;/, `access_log ${dir}/access.log;`);
  const code = conf.split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
  if (/:808[01]\b|\sbuild\//.test(code)) {
    throw new Error("examples/nginx.conf: a fixed port or path is left");
  }
  return conf;
}

export class Demo {
  static async start(opts = {}) {
    const d = new Demo();
    d.dir = fs.mkdtempSync(path.join(os.tmpdir(), "mitte-browser-"));
    fs.chmodSync(d.dir, 0o755);
    fs.mkdirSync(path.join(d.dir, "state"));
    d.port = await freePort();
    d.targetPort = await freePort();
    d.url = `http://127.0.0.1:${d.port}`;
    fs.writeFileSync(path.join(d.dir, "nginx.conf"),
                     demoConf(d.dir, d.port, d.targetPort));
    d.keep = !!process.env.MITTE_KEEP || opts.keep;
    await d.launch();
    return d;
  }

  async launch() {
    const out = fs.openSync(path.join(this.dir, "stderr.log"), "a");
    // NGINX is nginx's own: the sockets of a binary upgrade ([emerg])
    const env = { ...process.env };
    delete env.NGINX;
    this.proc = spawn(NGINX, ["-p", `${ROOT}/`, "-c", `${this.dir}/nginx.conf`,
                              "-e", `${this.dir}/error.log`,
                              "-g", "daemon off; master_process on;"],
                      { stdio: ["ignore", out, out], env });
    fs.closeSync(out);
    this.exited = new Promise((r) => this.proc.once("exit", (code, sig) => r({ code, sig })));
    for (let i = 0; i < 100; i++) {
      if (this.proc.exitCode !== null) break;
      try {
        const r = await fetch(this.url + "/mitte-admin/endpoints");
        if (r.status === 200) return;
      } catch (e) { /* not yet */ }
      await sleep(100);
    }
    throw new Error("nginx did not start:\n" + this.log());
  }

  log() {
    let t = "";
    for (const f of ["stderr.log", "error.log"]) {
      try { t += fs.readFileSync(path.join(this.dir, f), "utf8"); } catch (e) { /* none */ }
    }
    return t;
  }

  async halt() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGQUIT");                 // graceful: the state is saved
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 10000);
    await this.exited;
    clearTimeout(t);
  }

  // stop and start on the same ports, with the same state file
  async restart(gapMs = 0, during = null) {
    await this.halt();
    if (during) await during();
    if (gapMs) await sleep(gapMs);
    await this.launch();
  }

  // [alert], [crit] and [emerg] lines of the error log
  badLines() {
    return this.log().split("\n").filter((l) => /\[(alert|crit|emerg)\]/.test(l));
  }

  async stop() {
    await this.halt();
    const bad = this.badLines();
    if (!this.keep && !bad.length) fs.rmSync(this.dir, { recursive: true, force: true });
    return bad;
  }

  // one delivery through the proxy, as a webhook sender would make it
  async deliver(user, slug, status = 200) {
    const q = status === 200 ? "" : `?status=${status}`;
    const r = await fetch(`${this.url}/hooks/${slug}${q}`, {
      method: "POST", headers: { "X-Mitte-User": user, "Content-Type": "application/json" },
      body: "{}",
    });
    await r.arrayBuffer();
    return r.status;
  }

  // the operator's view of every endpoint
  async endpoints() {
    const r = await fetch(this.url + "/mitte-admin/endpoints");
    return (await r.json()).endpoints;
  }
}
