//! What the benchmarks share: the load generator (concurrent client loops,
//! latencies), the API client they drive, and the CPU time of server-side
//! processes read from /proc (a process and all its descendants).

use crate::helpers::{self, TestEnv};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Concurrent client loops in every load phase.
pub const CLIENTS: usize = 8;

pub async fn wait_for_health(http: &reqwest::Client, base: &str) {
    helpers::eventually(Duration::from_secs(60), "the service", || async {
        http.get(format!("{base}/health"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
}

/// Signs up and in through the API: a real session's access token.
pub async fn sign_in(env: &TestEnv, base: &str) -> String {
    let email = format!("bench-{}@fund.example", Uuid::now_v7().simple());
    env.register(base, &email, "Bench Analyst").await;
    let login = env.login(base, &email, helpers::PASSWORD).await;
    assert_eq!(login.status, reqwest::StatusCode::OK, "{}", login.body);
    login.body["access_token"].as_str().unwrap().to_owned()
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(CLIENTS * 2)
                .build()
                .unwrap(),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// Adds a company; its id.
    pub async fn post(&self, name: &str) -> Uuid {
        let response = self
            .http
            .post(format!("{}/v1/companies", self.base))
            .bearer_auth(&self.token)
            .json(&json!({
                "name": name,
                "website": format!("{}.example", name.to_lowercase().replace(' ', "-")),
                "sector": "Benchmarks"
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Writes a note on `company`; its id.
    pub async fn post_note(&self, company: Uuid, content: &str) -> Uuid {
        let response = self
            .http
            .post(format!("{}/v1/companies/{company}/notes", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "content": content }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// The workspace's 50 latest events, opened.
    pub async fn feed(&self) {
        let response = self
            .http
            .get(format!(
                "{}/v1/events?limit=50&event_type=note.added",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.unwrap();
    }

    pub async fn get(&self, id: Uuid) {
        let response = self
            .http
            .get(format!("{}/v1/companies/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.unwrap();
    }
}

/// What one load phase measured.
pub struct Phase {
    pub requests: u64,
    pub took: Duration,
    pub cpu_secs: f64,
    /// CPU seconds by process.
    pub cpu_by: HashMap<String, f64>,
    pub latencies_ms: Vec<f64>,
    pub ids: Vec<Uuid>,
}

impl Phase {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.took.as_secs_f64()
    }

    /// Microseconds of server-side CPU per request.
    pub fn cpu_per_request(&self) -> f64 {
        self.cpu_secs * 1e6 / self.requests.max(1) as f64
    }

    pub fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }

    /// Where the CPU went: µs per request by process, largest first.
    pub fn split(&self) -> String {
        let mut parts: Vec<(&String, &f64)> = self.cpu_by.iter().collect();
        parts.sort_by(|a, b| b.1.total_cmp(a.1));
        parts
            .iter()
            .map(|(name, secs)| format!("{name} {:.0}", **secs * 1e6 / self.requests.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

static NAMES: AtomicU64 = AtomicU64::new(0);

pub fn fresh_name(label: &str) -> String {
    format!(
        "{label} {} {}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::Relaxed)
    )
    .replace('@', "-")
}

/// Runs `request` from CLIENTS concurrent loops for `run_for`, counting
/// requests, their latencies and the servers' CPU time.
pub async fn load_phase<F, Fut>(servers: &[Process], run_for: Duration, request: F) -> Phase
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<Uuid>> + Send,
{
    let counter = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_by_process(servers);
    let started = Instant::now();
    let loops: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let request = request.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut ids = Vec::new();
                while started.elapsed() < run_for {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    if let Some(id) = request(n).await {
                        ids.push(id);
                    }
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                }
                (latencies, ids)
            })
        })
        .collect();
    let mut latencies_ms = Vec::new();
    let mut ids = Vec::new();
    for handle in loops {
        let (l, i) = handle.await.unwrap();
        latencies_ms.extend(l);
        ids.extend(i);
    }
    let took = started.elapsed();
    let cpu_by: HashMap<String, f64> = cpu_by_process(servers)
        .into_iter()
        .map(|(name, secs)| {
            let start = cpu_before.get(&name).copied().unwrap_or_default();
            (name, secs - start)
        })
        .collect();
    let cpu_secs = cpu_by.values().sum();
    latencies_ms.sort_by(f64::total_cmp);
    Phase {
        requests: latencies_ms.len() as u64,
        took,
        cpu_secs,
        cpu_by,
        latencies_ms,
        ids,
    }
}

/// A server-side process whose CPU time is counted.
#[derive(Clone, Debug)]
pub struct Process {
    pub name: String,
    pub pid: u32,
}

impl Process {
    pub fn new(name: &str, pid: u32) -> Self {
        Self {
            name: name.to_owned(),
            pid,
        }
    }

    /// The process listening on a local TCP port (Postgres' postmaster,
    /// nats-server): its socket's inode from /proc/net/tcp, then the process
    /// holding that socket.
    pub fn listening_on(port: u16, name: &str) -> Self {
        let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .filter_map(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        let local_port = fields.get(1)?.rsplit(':').next()?;
                        let listening = fields.get(3)? == &"0A";
                        (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                            .then(|| fields.get(9).map(|s| s.to_string()))
                            .flatten()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if wanted.iter().any(|w| target.to_string_lossy() == *w) {
                        return Process::new(name, pid);
                    }
                }
            }
        }
        panic!("no process listens on port {port} ({name}); the benchmark must run on the machine of its servers");
    }

    pub fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|status| {
                status.lines().find_map(|l| {
                    l.strip_prefix("VmHWM:")
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse().ok())
                })
            })
            .unwrap_or(0)
    }
}

/// utime, stime, cutime, cstime and the parent of a process, in clock ticks.
pub fn stat_of(pid: u32) -> Option<([u64; 4], u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields after it are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let mut times = [0u64; 4];
    for (i, time) in times.iter_mut().enumerate() {
        *time = fields.get(11 + i)?.parse().ok()?;
    }
    Some((times, parent))
}

pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds used so far by each process and its descendants (Postgres'
/// backends are children of the postmaster; the ones that ended are in its
/// children's times).
pub fn cpu_by_process(processes: &[Process]) -> HashMap<String, f64> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() {
            if let Some((_, parent)) = stat_of(pid) {
                parents.entry(parent).or_default().push(pid);
            }
        }
    }
    let ticks = clock_ticks_per_second();
    let mut totals = HashMap::new();
    for process in processes {
        let mut sum = 0u64;
        let mut todo = vec![process.pid];
        while let Some(pid) = todo.pop() {
            if let Some((times, _)) = stat_of(pid) {
                sum += times.iter().sum::<u64>();
            }
            todo.extend(parents.get(&pid).into_iter().flatten());
        }
        *totals.entry(process.name.clone()).or_insert(0.0) += sum as f64 / ticks;
    }
    totals
}

/// Each process's CPU seconds over `period`, doing nothing meanwhile.
pub async fn cpu_of(processes: &[Process], period: Duration) -> HashMap<String, f64> {
    let before = cpu_by_process(processes);
    tokio::time::sleep(period).await;
    let after = cpu_by_process(processes);
    after
        .into_iter()
        .map(|(name, secs)| {
            let start = before.get(&name).copied().unwrap_or_default();
            (name, secs - start)
        })
        .collect()
}

/// `vcintel serve --only <component>` (the release binary) on `port`,
/// against `database_url` and `nats_url` under the stream `prefix`, with
/// `extra` environment.
pub fn spawn_vcintel(
    component: &str,
    port: u16,
    database_url: &str,
    nats_url: &str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env("VCINTEL_PRIVACY_MASTER_KEY", helpers::PRIVACY_MASTER_KEY)
        .args(["serve", "--only", component])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", nats_url)
        .env("VCINTEL_JWT_SECRET", helpers::JWT_SECRET)
        .env("VCINTEL_NATS_PREFIX", prefix)
        // Counting every request, refusing none: the benchmark stands for
        // many users each within their budget.
        .env("VCINTEL_RATE_LIMIT_PER_USER", "1000000000")
        // The benchmark signs several accounts in from one address.
        .env("VCINTEL_RATE_LIMIT_AUTH", "0")
        .env("VCINTEL_ACCESS_TOKEN_TTL_SECS", "86400")
        .env("RUST_LOG", "warn")
        .envs(extra.iter().copied())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start vcintel")
}
