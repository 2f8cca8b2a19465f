#!/usr/bin/env python3
"""Cold start of the sample host in its AWS authorizer role: process start -> first authorizer answer.

Starts dynalite (tests/tools) on a free 127.0.0.1 port, creates the table once with a warm-up run, then starts the host
N times (a fresh process each time, as a Lambda cold start) and POSTs an API Gateway REQUEST authorizer event to /events
every 2 ms until the first 200 answer (a Deny for an unknown ticket: the ticket is looked up in DynamoDB, so the
answer includes the store's first call). Reports min / median / max. The Lambda Web Adapter's own start and Lambda's
init are not included: this measures what the .NET process adds.

usage: benchmarks/cold-start.py HOST_COMMAND... [--runs N] [--memory MB] [--lambda-runtime]
(without --lambda-runtime: the sample host in its authorizer role behind the Web Adapter's pass-through path)
  e.g. benchmarks/cold-start.py /tmp/aot/Talki.Samples.Host                       (Native AOT publish)
       benchmarks/cold-start.py dotnet samples/Talki.Samples.Host/bin/Release/net10.0/Talki.Samples.Host.dll (JIT)
       benchmarks/cold-start.py qemu-aarch64-static /tmp/aot-arm64/Talki.Samples.Host   (linux-arm64 AOT, emulated)
HOST_COMMAND may start with a wrapper such as qemu-aarch64-static: everything but --runs is the command line. The host
runs in its own directory, as the function's bootstrap starts it (before 2026-12-05: in the repository's root, whose
tree ASP.NET Core's configuration watcher walked on every start, about 20 ms of the figure).

--memory MB models a function of MB on Lambda: the host starts unconfined (a function's init runs with a CPU burst:
"Lambda managed runtimes offer up to 10 seconds for function initialization with burst CPU", the Lambda Web Adapter's
async-init page) until GET / answers (the stack's AWS_LWA_READINESS_CHECK_PATH, which ends the init), then it is moved
into a cgroup holding it to MB / 1769 of a CPU's time ("At 1,769 MB, a function has the equivalent of one vCPU",
https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html), in 20 ms periods (observed on Lambda:
pwrdrvr/lambda-dispatch issue 246), and the event is posted. It reports the init and the first answer apart. Needs root
and a cgroup CPU controller (v1 cpu or v2); the host must be the command itself (no wrapper). The same model as
LambdaCpuShare in tests/Talki.Signalling.ApiGatewayEmulator.

--lambda-runtime runs the authorizer as the stack deploys it since 2026-12-07: a Lambda custom runtime
(samples/Talki.Samples.AwsAuthorizer's executable: no web server, no Lambda Web Adapter), e.g.
  dotnet publish samples/Talki.Samples.AwsAuthorizer -c Release -r linux-x64 -o /tmp/aot-authorizer
  benchmarks/cold-start.py /tmp/aot-authorizer/Talki.Samples.AwsAuthorizer --runs 10 --lambda-runtime
The script is then its runtime API
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): it starts the host with AWS_LAMBDA_RUNTIME_API naming a
local port, hands the event to the first GET /2018-06-01/runtime/invocation/next, and the figure ends when the answer is
POSTed to /2018-06-01/runtime/invocation/{id}/response (202). No polling: the host asks for the event itself. With
--memory, the init ends at that first GET ("the Init phase ends when the runtime and all extensions signal that they are
ready by sending a Next API request", https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).
"""
import http.server, threading
import json, os, socket, statistics, subprocess, sys, time, urllib.request, urllib.error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def event():
    return json.dumps({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/default/$connect",
        "headers": {"Host": "abcdef123.execute-api.us-east-1.amazonaws.com", "Upgrade": "websocket"},
        "queryStringParameters": {"v": "1", "ticket": "A" * 43},
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "Abc123Def456Ghi=",
                           "stage": "default", "apiId": "abcdef123", "domainName": "abcdef123.execute-api.us-east-1.amazonaws.com"},
    }).encode()

def wait_answer(port, deadline):
    body = event()
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/events", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.002)
    raise TimeoutError("no authorizer answer")

def workdir(cmd):
    """The directory of the host's file in the command line (the last argument that is a file): the function's bootstrap
    (samples/Talki.Samples.AwsCdk/lambda/bootstrap) starts the host from its package directory, LAMBDA_TASK_ROOT, so the
    host's content root, which ASP.NET Core watches for configuration changes, is that directory and not a source tree."""
    return next((os.path.dirname(os.path.abspath(a)) for a in reversed(cmd) if os.path.isfile(a)), ROOT)

PERIOD_US = 20_000

def cpu_group(memory):
    """Creates a cgroup holding its processes to the CPU share of a function of `memory` MB; returns its directory."""
    quota = max(1000, round(memory / 1769 * PERIOD_US))
    name = f"talki-cold-start-{os.getpid()}"
    if os.path.exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
        path = os.path.join("/sys/fs/cgroup/cpu", name)
        os.makedirs(path, exist_ok=True)
        open(os.path.join(path, "cpu.cfs_period_us"), "w").write(str(PERIOD_US))
        open(os.path.join(path, "cpu.cfs_quota_us"), "w").write(str(quota))
        return path
    if "cpu" in open("/sys/fs/cgroup/cgroup.controllers").read().split():
        if "cpu" not in open("/sys/fs/cgroup/cgroup.subtree_control").read().split():
            open("/sys/fs/cgroup/cgroup.subtree_control", "w").write("+cpu")
        path = os.path.join("/sys/fs/cgroup", name)
        os.makedirs(path, exist_ok=True)
        open(os.path.join(path, "cpu.max"), "w").write(f"{quota} {PERIOD_US}")
        return path
    raise SystemExit("--memory needs a writable cgroup CPU controller (root; cgroup v1 cpu or v2 with cpu)")

def wait_ready(port, deadline):
    """The Web Adapter's readiness check: GET / until any answer below 500."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.002)
    raise TimeoutError("never ready")

def settings(dynamo, table, create):
    """The authorizer's configuration on its command line: AWS mode against dynalite, the authorizer role."""
    return ["--Talki:Aws:TableName=" + table, "--Talki:Aws:Role=authorizer", "--Talki:Aws:Region=us-east-1",
            "--Talki:Aws:DynamoDbServiceUrl=" + dynamo, "--Talki:Aws:AccessKeyId=local", "--Talki:Aws:SecretAccessKey=local",
            "--Talki:Aws:GatewaySecret=cold-start-secret-0123456789abcdef", "--Talki:Aws:ApiEndpoint=https://abcdef123.execute-api.us-east-1.amazonaws.com",
            "--Talki:Aws:Stage=default", "--Talki:Aws:CreateTable=" + ("true" if create else "false"),
            "--Logging:LogLevel:Default=Warning"]

def run(cmd, dynamo, table, create, group=None):
    port = free_port()
    cmd = [os.path.abspath(a) if os.path.isfile(a) else a for a in cmd]  # the host starts in another directory
    args = cmd + ["--urls", f"http://127.0.0.1:{port}"] + settings(dynamo, table, create)
    start = time.monotonic()
    # A session of its own, so that the whole group is stopped after: a wrapper such as strace leaves its tracee running
    # when only the wrapper is killed.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir(cmd), start_new_session=True)
    try:
        ready = None
        if group:
            wait_ready(port, start + 60)
            ready = (time.monotonic() - start) * 1000
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(proc.pid))  # every thread of the host, from now on at the share
        answer = wait_answer(port, start + 60)
        elapsed = (time.monotonic() - start) * 1000
        effect = answer["policyDocument"]["Statement"][0]["Effect"]
        return (elapsed, ready), effect
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()

class RuntimeApi(http.server.ThreadingHTTPServer):
    """One environment's runtime API: the first /next gets the event, later ones wait until the server closes."""
    daemon_threads = True

    def __init__(self, on_first_next):
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.on_first_next = on_first_next
        self.served = False
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.answered = threading.Event()
        self.answer = None
        self.first_next = None

    def handle_error(self, request, client_address):
        pass  # the host is killed after each run, resetting its waiting GET

class RuntimeApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/2018-06-01/runtime/invocation/next":
            self.send_error(404); return
        with self.server.lock:
            first = not self.server.served
            self.server.served = True
        if not first:
            self.server.closing.wait(); return  # an environment waits for its next event as long as there is none
        self.server.first_next = time.monotonic()
        self.server.on_first_next()
        body = event()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "8476a536-e9f4-11e8-9739-2dfe598c3fcd")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:talki-authorizer")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response":
            self.send_error(404); return
        self.server.answer = json.loads(body)
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "16")
        self.end_headers()
        self.wfile.write(b'{"status":"OK"}\n')
        self.server.answered.set()

def run_runtime(cmd, dynamo, table, create, group=None):
    cmd = [os.path.abspath(a) if os.path.isfile(a) else a for a in cmd]
    proc_box = []

    def on_first_next():
        if group:
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(proc_box[0].pid))

    api = RuntimeApi(on_first_next)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    args = cmd + settings(dynamo, table, create)
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_address[1]}")
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir(cmd), env=env, start_new_session=True)
    proc_box.append(proc)
    try:
        if not api.answered.wait(60):
            raise TimeoutError("no authorizer answer: " + proc.stderr.read1(4096).decode(errors="replace") if proc.poll() is not None else "no authorizer answer")
        elapsed = (time.monotonic() - start) * 1000
        ready = (api.first_next - start) * 1000 if group else None
        return (elapsed, ready), api.answer["policyDocument"]["Statement"][0]["Effect"]
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        api.closing.set()
        api.shutdown()
        api.server_close()

def main():
    argv = sys.argv[1:]
    runs = 10
    if "--runs" in argv:
        i = argv.index("--runs"); runs = int(argv[i + 1]); del argv[i:i + 2]
    memory = None
    if "--memory" in argv:
        i = argv.index("--memory"); memory = int(argv[i + 1]); del argv[i:i + 2]
    runner = run
    if "--lambda-runtime" in argv:
        argv.remove("--lambda-runtime"); runner = run_runtime
    if not argv:
        print(__doc__); sys.exit(2)
    dport = free_port()
    dynalite = subprocess.Popen(["node", os.path.join(ROOT, "tests/tools/node_modules/dynalite/cli.js"), "--port", str(dport)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    group = None
    try:
        group = cpu_group(memory) if memory else None
        time.sleep(0.5)
        dynamo = f"http://127.0.0.1:{dport}"
        (warm, _), effect = runner(argv, dynamo, "talki-cold", True, group)  # creates the table
        times, inits = [], []
        for _ in range(runs):
            (elapsed, ready), effect = runner(argv, dynamo, "talki-cold", False, group)
            times.append(elapsed)
            if ready is not None:
                inits.append(ready)
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        held = ""
        if memory:
            firsts = [t - i for t, i in zip(times, inits)]
            held = (f"; as a {memory} MB function: init unconfined until {'the first GET /next' if runner is run_runtime else 'GET / answers'}, median {statistics.median(inits):.0f} ms, "
                    f"then held to {memory / 1769:.3f} of a core, the first answer after it median {statistics.median(firsts):.0f} ms "
                    f"(min {min(firsts):.0f}, max {max(firsts):.0f})")
        print(f"{' '.join(argv)}{' (Lambda custom runtime)' if runner is run_runtime else ''}: process start -> first authorizer answer ({effect}), {runs} runs: "
              f"min {min(times):.0f} ms, median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
              f"(warm-up with table creation {warm:.0f} ms; {os.cpu_count()} cores, load average {' '.join(load)}{held})")
    finally:
        dynalite.kill()
        dynalite.wait()
        if group:
            for _ in range(40):
                try:
                    os.rmdir(group)
                    break
                except OSError:
                    time.sleep(0.05)

if __name__ == "__main__":
    main()
