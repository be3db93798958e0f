//! portcullis beside `opa run --server` (v1.20.2, from `scripts/tools.sh`), side by side in one
//! run, on the same policies, data and input: the default library and the 10.7 KB Pod of
//! `tests/fixtures/reviews/policy/pod-10kb.json`. portcullis answers the AdmissionReview; OPA
//! evaluates a rule that collects every policy's `deny` and `warn` on the exact input document
//! portcullis builds for that review (so OPA is spared the parsing and the facts). Both serve
//! HTTPS with keep-alive, each pinned to core 0 with `taskset`, the load generator (vegeta) on
//! core 1. Servers: the glibc release binary, the static musl binary the image ships
//! (`PORTCULLIS_STATIC_BINARY`, which `make bench` builds with `scripts/static-build.sh`), OPA,
//! and a floor: this bench's own process, pinned the same way, serving a constant allow on the
//! same TLS and HTTP stack (`Server::bind` with a constant router), so that the machine's own
//! tail (loopback, TLS, HTTP, the load generator) is measured in the same run as the servers'.
//!
//! Each measurement is taken in rounds, the servers interleaved, and reported as the
//! median with its spread; the ratios are portcullis over OPA in the same round.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/spread.rs"]
mod spread;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use common::lab::{pick_port, tool, Service};
use common::poll::poll;
use portcullis::policy::engine::PolicyKind;
use portcullis::policy::{input, Source};
use portcullis::server::certs;
use spread::spread;

const REVIEW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/reviews/policy/pod-10kb.json"
);
const ROUNDS: usize = 3;
/// One measurement's length.
const SECONDS: u64 = 8;
/// Connections for the throughput measurement, as in the table.
const CONNECTIONS: usize = 8;
/// The fixed rates whose latency is reported.
const RATES: [u32; 2] = [200, 400];

struct Server {
    name: String,
    url: String,
    body: PathBuf,
    service: Service,
}

/// What vegeta measured in one attack.
#[derive(Clone, Copy)]
struct Attack {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() {
    floor::serve_if_asked();
    let static_binary = std::env::var_os("PORTCULLIS_STATIC_BINARY").map(PathBuf::from).unwrap_or_else(|| {
        panic!("PORTCULLIS_STATIC_BINARY is not set: run `make bench`, or set it to the binary scripts/static-build.sh prints")
    });
    let (opa, vegeta) = (tool("opa"), tool("vegeta"));
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let tls = certs::generate(&["localhost"]).expect("certificates");
    for (name, text) in [("tls.crt", &tls.cert), ("tls.key", &tls.key), ("ca.crt", &tls.ca_cert)] {
        std::fs::write(dir.join(name), text).expect("write");
    }

    // The input document portcullis builds for the review, and OPA's copy of the library.
    let review: Value = serde_json::from_slice(&std::fs::read(REVIEW).expect("fixture")).expect("json");
    let settings = common::settings(&floor::config(pick_port(), dir));
    let state = common::state_with_source(&settings, Source::Embedded, &[]);
    let document = state.reviewer.input(&review["request"]);
    let expected = state.reviewer.decide(&review["request"]);
    let opa_dir = dir.join("opa");
    write_opa_library(&opa_dir, &settings, state.reviewer.policies().policies());
    std::fs::write(dir.join("review.json"), serde_json::to_vec(&review).expect("json")).expect("write");
    std::fs::write(dir.join("input.json"), json!({ "input": document }).to_string()).expect("write");

    let mut servers = vec![
        portcullis_server(
            "portcullis (glibc release)",
            Path::new(env!("CARGO_BIN_EXE_portcullis")),
            dir,
            "glibc",
        ),
        portcullis_server("portcullis (static musl, as shipped)", &static_binary, dir, "musl"),
        opa_server(&opa, &opa_dir, dir),
        floor_server(dir),
    ];
    for server in &servers {
        wait_ready(server, dir);
    }
    // The same work: OPA's deny messages are portcullis's.
    let ours: Vec<String> = expected
        .results
        .iter()
        .flat_map(|r| r.deny.iter().map(|v| v.message.clone()))
        .collect();
    let theirs = opa_denials(&servers[2], dir);
    let mut sorted = ours.clone();
    sorted.sort();
    assert_eq!(sorted, theirs, "portcullis and OPA disagree on the review");

    let mut throughput: Vec<Vec<Attack>> = vec![Vec::new(); servers.len()];
    let mut fixed: Vec<Vec<Vec<Attack>>> = vec![vec![Vec::new(); RATES.len()]; servers.len()];
    for _ in 0..ROUNDS {
        for (index, server) in servers.iter().enumerate() {
            throughput[index].push(attack(&vegeta, server, dir, None));
            for (r, rate) in RATES.iter().enumerate() {
                fixed[index][r].push(attack(&vegeta, server, dir, Some(*rate)));
            }
        }
    }

    println!(
        "Review: {} ({} bytes); {} native policies; each server pinned to core 0, vegeta on core 1; {ROUNDS} rounds of {SECONDS} s per measurement, servers interleaved; median (min to max)\n",
        REVIEW.rsplit('/').next().unwrap_or_default(),
        std::fs::metadata(REVIEW).map(|m| m.len()).unwrap_or(0),
        ours_policy_count(&state)
    );
    let mut header = format!("| | max req/s, {CONNECTIONS} connections |");
    for rate in RATES {
        header.push_str(&format!(" p50 / p99 at {rate} req/s (ms) |"));
    }
    println!("{header}");
    println!("|---|---|{}", "---|".repeat(RATES.len()));
    for (index, server) in servers.iter().enumerate() {
        let mut row = format!(
            "| {} | {} |",
            server.name,
            spread(throughput[index].iter().map(|a| a.throughput), 0)
        );
        for attacks in &fixed[index] {
            row.push_str(&format!(
                " {} / {} |",
                spread(attacks.iter().map(|a| a.p50_ms), 2),
                spread(attacks.iter().map(|a| a.p99_ms), 2)
            ));
        }
        println!("{row}");
    }
    println!();
    for index in 0..2 {
        let ratios = (0..ROUNDS).map(|round| throughput[index][round].throughput / throughput[2][round].throughput);
        println!(
            "{} / OPA, max req/s per core, per round: {} (aim: 5, at least 3)",
            servers[index].name,
            spread(ratios, 2)
        );
    }
    // The machine's own tail at the highest rate, and what each portcullis adds to it.
    let r = RATES.len() - 1;
    let floor_p99 = spread(fixed[3][r].iter().map(|a| a.p99_ms), 2);
    for index in 0..2 {
        let over = (0..ROUNDS).map(|round| fixed[index][r][round].p99_ms - fixed[3][r][round].p99_ms);
        println!(
            "{}: p99 at {} req/s {} ms (aim: under 2), {} ms above the floor's ({floor_p99} ms) per round",
            servers[index].name,
            RATES[r],
            spread(fixed[index][r].iter().map(|a| a.p99_ms), 2),
            spread(over, 2)
        );
    }
    for server in servers.drain(..) {
        server.service.stop();
    }
}

fn ours_policy_count(state: &portcullis::server::router::AppState) -> usize {
    let set = state.reviewer.policies();
    set.policies().iter().filter(|p| p.kind == PolicyKind::Native).count()
}

fn portcullis_server(name: &str, binary: &Path, dir: &Path, tag: &str) -> Server {
    let port = pick_port();
    let config = dir.join(format!("portcullis-{tag}.yaml"));
    std::fs::write(&config, floor::config(port, dir)).expect("write");
    let args = [
        "-c",
        "0",
        binary.to_str().expect("path"),
        "serve",
        "--config",
        config.to_str().expect("path"),
    ];
    Server {
        name: name.to_string(),
        url: format!("https://localhost:{port}/validate?timeout=10s"),
        body: dir.join("review.json"),
        service: Service::spawn(
            Path::new("taskset"),
            &args,
            &dir.join(format!("portcullis-{tag}.log")),
            Stdio::null(),
        ),
    }
}

/// This binary again, as the floor server on core 0.
fn floor_server(dir: &Path) -> Server {
    let (port, config) = (pick_port(), dir.join("floor.yaml"));
    std::fs::write(&config, floor::config(port, dir)).expect("write");
    let command = floor::command_line(&config);
    let args: Vec<&str> = ["-c", "0"]
        .into_iter()
        .chain(command.iter().map(String::as_str))
        .collect();
    Server {
        name: "floor: the same TLS + HTTP stack, a constant allow".to_string(),
        url: format!("https://localhost:{port}/validate?timeout=10s"),
        body: dir.join("review.json"),
        service: Service::spawn(Path::new("taskset"), &args, &dir.join("floor.log"), Stdio::null()),
    }
}

fn opa_server(opa: &Path, library: &Path, dir: &Path) -> Server {
    let port = pick_port();
    let addr = format!("127.0.0.1:{port}");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let args = [
        "-c",
        "0",
        opa.to_str().expect("path"),
        "run",
        "--server",
        "--log-level",
        "error",
        "--addr",
        &addr,
        "--tls-cert-file",
        cert.to_str().expect("path"),
        "--tls-private-key-file",
        key.to_str().expect("path"),
        library.to_str().expect("path"),
    ];
    Server {
        name: "`opa run --server` v1.20.2".to_string(),
        url: format!("https://localhost:{port}/v1/data/bench/results"),
        body: dir.join("input.json"),
        service: Service::spawn(Path::new("taskset"), &args, &dir.join("opa.log"), Stdio::null()),
    }
}

/// The library's modules, its data with portcullis's config part, and `data.bench.results`:
/// every native policy's `deny` and `warn`, as portcullis's one pass collects them.
fn write_opa_library(
    dir: &Path,
    settings: &portcullis::config::Settings,
    policies: &[portcullis::policy::engine::Policy],
) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let bundle = Source::Embedded.read().expect("library");
    for (index, module) in bundle.modules.iter().enumerate() {
        std::fs::write(dir.join(format!("module-{index}.rego")), &module.text).expect("write");
    }
    let mut data = bundle.data.clone();
    if let (Value::Object(data), Value::Object(config)) = (
        &mut data,
        input::config_data(&settings.allowed_registries, settings.risk_default, false),
    ) {
        data.extend(config);
    }
    std::fs::write(dir.join("data.json"), data.to_string()).expect("write");
    let fields: Vec<String> = policies
        .iter()
        .filter(|p| p.kind == PolicyKind::Native)
        .map(|p| {
            let rule = |name: &str, declared: bool| match declared {
                true => format!("[v | v := data.{}.{name}]", p.id),
                false => "[]".to_string(),
            };
            format!(
                "{:?}: {{\"deny\": {}, \"warn\": {}}}",
                p.id,
                rule("deny", p.has_deny),
                rule("warn", p.has_warn)
            )
        })
        .collect();
    std::fs::write(
        dir.join("bench.rego"),
        format!("package bench\n\nresults := {{{}}}\n", fields.join(",\n  ")),
    )
    .expect("write");
}

fn curl(server: &Server, dir: &Path) -> Option<Value> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(dir.join("ca.crt"))
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", server.body.display()))
        .arg(&server.url)
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

fn wait_ready(server: &Server, dir: &Path) {
    poll(
        &format!("{} to answer", server.name),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || curl(server, dir).filter(|v| v.get("response").is_some() || v.get("result").is_some()),
    );
}

fn opa_denials(server: &Server, dir: &Path) -> Vec<String> {
    let answer = curl(server, dir).expect("OPA answers");
    let mut messages: Vec<String> = answer["result"]
        .as_object()
        .unwrap_or_else(|| panic!("OPA: {answer}"))
        .values()
        // Each policy's `deny` is wrapped: `[]` when undefined, else `[messages]`.
        .flat_map(|said| said["deny"].as_array().cloned().unwrap_or_default())
        .flat_map(|messages| messages.as_array().cloned().unwrap_or_default())
        .map(|m| match m.as_str() {
            Some(text) => text.to_string(),
            None => m["msg"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    messages.sort();
    messages
}

/// One vegeta attack on `server` from core 1: at `rate` requests per second, or as fast as
/// [`CONNECTIONS`] connections go. Every request must succeed.
fn attack(vegeta: &Path, server: &Server, dir: &Path, rate: Option<u32>) -> Attack {
    let targets = dir.join("targets.txt");
    std::fs::write(
        &targets,
        format!(
            "POST {}\nContent-Type: application/json\n@{}\n",
            server.url,
            server.body.display()
        ),
    )
    .expect("write");
    let results = dir.join("results.bin");
    let duration = format!("{SECONDS}s");
    let mut command = Command::new("taskset");
    command
        .args(["-c", "1"])
        .arg(vegeta)
        .args([
            "attack",
            "-format",
            "http",
            "-http2=false",
            "-keepalive=true",
            "-duration",
            &duration,
        ])
        .arg(format!("-targets={}", targets.display()))
        .arg(format!("-root-certs={}", dir.join("ca.crt").display()))
        .arg(format!("-output={}", results.display()));
    match rate {
        Some(rate) => command.args([
            format!("-rate={rate}"),
            "-workers=8".into(),
            format!("-connections={CONNECTIONS}"),
        ]),
        None => command.args([
            "-rate=0".to_string(),
            format!("-workers={CONNECTIONS}"),
            format!("-max-workers={CONNECTIONS}"),
            format!("-connections={CONNECTIONS}"),
            format!("-max-connections={CONNECTIONS}"),
        ]),
    };
    let status = command.status().expect("vegeta");
    assert!(status.success(), "vegeta attack on {}", server.name);
    let report = Command::new(vegeta)
        .args(["report", "-type=json"])
        .arg(&results)
        .output()
        .expect("vegeta report");
    let report: Value = serde_json::from_slice(&report.stdout).expect("vegeta's report");
    assert_eq!(report["success"].as_f64(), Some(1.0), "{}: {report}", server.name);
    let ms = |key: &str| report["latencies"][key].as_f64().unwrap_or(f64::NAN) / 1e6;
    Attack {
        throughput: report["throughput"].as_f64().unwrap_or(0.0),
        p50_ms: ms("50th"),
        p99_ms: ms("99th"),
    }
}
