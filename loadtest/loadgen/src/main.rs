//! `loadgen`: facility-shaped load on a Tiled-compatible server (tessera, or the real Tiled
//! with the same URLs) and one table row per run.
//!
//! A small tokio + reqwest program rather than goose or wrk: the scenarios need requests drawn
//! at random from overlapping hot regions (wrk sends one URL), the run ends by reading the
//! cache counters of every node's `/metrics` (goose has no such hook without a custom
//! transaction), and it builds with the crates the workspace already has.
//!
//! Scenarios (paths under `/api/v1`, so the demo tree of either server answers them):
//! - `overlap`: many users reading overlapping slices of the same large arrays: windows of
//!   `medium_image` (1000 x 1000, 250 x 100 chunks; 90 % of requests) and of `big_image`
//!   (10000 x 10000, 4096 x 4096 chunks of 128 MiB; 10 %) around a few hot spots, as raw bytes;
//! - `stack`: many users reading overlapping regions of the hot frames of an HDF5 detector
//!   stack (gzip, one frame per chunk; `--stack-path`, by default the full-size NeXus scan of
//!   `tests/fixtures/make_files.py --frames 60 --height 1065 --width 1030` under
//!   `serve directory`): 256 x 256 windows around 4 spots of 8 hot frames, as raw bytes;
//! - `frames`: one native block of `medium_image` per request (a detector frame);
//! - `browse`: searching and reading metadata (root page, a filtered search, a node);
//! - `columns`: one column of one partition of `long_table`, as Arrow;
//! - `exports`: PNG of image regions (heavy encodes);
//! - `mix`: 60 % overlap, 20 % browse, 15 % columns, 5 % exports.

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Facility-shaped load on a Tiled-compatible server"
)]
struct Args {
    /// Base URL(s) of the server (several: requests go round-robin).
    #[arg(long, required = true)]
    url: Vec<String>,
    /// overlap, stack, frames, browse, columns, exports or mix.
    #[arg(long, default_value = "overlap")]
    scenario: String,
    /// The detector stack of the `stack` scenario (frames x height x width, at least
    /// 60 x 1024 x 1024).
    #[arg(long, default_value = "raw/scan_0042/entry/instrument/detector/data")]
    stack_path: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// `/metrics` pages to read the cache counters from before and after (every API node
    /// and worker).
    #[arg(long)]
    metrics: Vec<String>,
    /// The row's name in the table.
    #[arg(long, default_value = "run")]
    label: String,
    /// Print the table's header first.
    #[arg(long)]
    header: bool,
    /// An API key for servers that ask for one.
    #[arg(long)]
    api_key: Option<String>,
    /// An access token (sent as `Authorization: Bearer ...`) instead of a key.
    #[arg(long, conflicts_with = "api_key")]
    bearer: Option<String>,
}

/// A small deterministic generator (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The path (under `/api/v1`) and `Accept` header of the next request of `scenario`.
fn request(scenario: &str, stack: &str, rng: &mut Rng) -> (String, &'static str) {
    const RAW: &str = "application/octet-stream";
    match scenario {
        "stack" => {
            // 8 hot frames of 60, 4 hot spots in each, windows jittered by up to 64.
            let frame = [3, 11, 17, 24, 30, 41, 47, 58][rng.below(8) as usize];
            let spots = [(100, 100), (400, 600), (700, 200), (640, 700)];
            let (r, c) = spots[rng.below(4) as usize];
            let (r, c) = (r + rng.below(64), c + rng.below(64));
            let sel = format!("{frame},{r}:{},{c}:{}", r + 256, c + 256);
            (format!("/array/full/{stack}?slice={sel}"), RAW)
        }
        "overlap" => {
            if rng.below(10) == 0 {
                // big_image: 4 hot spots, 256 x 256 windows jittered by up to 64, each inside
                // one of its 128 MiB chunks.
                let spots = [(1000, 1000), (5000, 5000), (6000, 2000), (8500, 9000)];
                let (r, c) = spots[rng.below(4) as usize];
                let (r, c) = (r + rng.below(64), c + rng.below(64));
                let sel = format!("{r}:{},{c}:{}", r + 256, c + 256);
                (format!("/array/full/nested/images/big_image?slice={sel}"), RAW)
            } else {
                // medium_image: 8 hot spots, 150 x 150 windows jittered by up to 100.
                let (r, c) = ((rng.below(8) * 100) as usize, (rng.below(8) * 100) as usize);
                let (r, c) = (r + rng.below(100) as usize, c + rng.below(100) as usize);
                let sel = format!("{r}:{},{c}:{}", (r + 150).min(1000), (c + 150).min(1000));
                (format!("/array/full/nested/images/medium_image?slice={sel}"), RAW)
            }
        }
        "frames" => {
            let block = format!("{},{}", rng.below(4), rng.below(10));
            (format!("/array/block/nested/images/medium_image?block={block}"), RAW)
        }
        "browse" => match rng.below(3) {
            0 => ("/search/?page[limit]=100".into(), "application/json"),
            1 => (
                "/search/nested?filter[eq][condition][key]=color&filter[eq][condition][value]=%22green%22"
                    .into(),
                "application/json",
            ),
            _ => ("/metadata/nested/images/medium_image".into(), "application/json"),
        },
        "columns" => {
            let col = ["A", "B", "C"][rng.below(3) as usize];
            let part = rng.below(3);
            (
                format!("/table/partition/tables/long_table?partition={part}&column={col}"),
                "application/vnd.apache.arrow.file",
            )
        }
        "exports" => {
            let r = rng.below(8) * 100;
            (
                format!("/array/full/nested/images/medium_image?slice={r}:{},0:1000", r + 200),
                "image/png",
            )
        }
        _ => {
            let pick = rng.below(100);
            let s = match pick {
                0..60 => "overlap",
                60..80 => "browse",
                80..95 => "columns",
                _ => "exports",
            };
            request(s, stack, rng)
        }
    }
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    bytes: u64,
}

async fn client(
    http: reqwest::Client,
    urls: Vec<String>,
    scenario: String,
    stack: String,
    seed: u64,
    until: Instant,
) -> Tally {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut t = Tally::default();
    let mut i = seed as usize;
    while Instant::now() < until {
        let (path, accept) = request(&scenario, &stack, &mut rng);
        let url = format!("{}/api/v1{path}", urls[i % urls.len()]);
        i += 1;
        let started = Instant::now();
        let ok = match http.get(&url).header("Accept", accept).send().await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => {
                    t.bytes += b.len() as u64;
                    true
                }
                Err(_) => false,
            },
            _ => false,
        };
        if ok {
            t.latencies_us
                .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        } else {
            t.errors += 1;
        }
    }
    t
}

/// Sums of the cache counters over `pages`.
#[derive(Clone, Default, Debug)]
struct Counters {
    l1_hits: f64,
    l1_misses: f64,
    l2_hits: f64,
    l2_misses: f64,
    decodes: f64,
    /// CPU seconds of the process behind each page, in page order.
    cpu: Vec<f64>,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            l1_hits: self.l1_hits - o.l1_hits,
            l1_misses: self.l1_misses - o.l1_misses,
            l2_hits: self.l2_hits - o.l2_hits,
            l2_misses: self.l2_misses - o.l2_misses,
            decodes: self.decodes - o.decodes,
            cpu: self.cpu.iter().zip(&o.cpu).map(|(a, b)| a - b).collect(),
        }
    }
}

async fn counters(http: &reqwest::Client, pages: &[String]) -> Counters {
    let mut c = Counters {
        cpu: vec![0.0; pages.len()],
        ..Counters::default()
    };
    for (i, page) in pages.iter().enumerate() {
        let Ok(r) = http.get(page).send().await else {
            continue;
        };
        let Ok(text) = r.text().await else { continue };
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let v: f64 = value.parse().unwrap_or(0.0);
            match name {
                "tessera_chunk_cache_hits_total{tier=\"l1\"}" => c.l1_hits += v,
                "tessera_chunk_cache_misses_total{tier=\"l1\"}" => c.l1_misses += v,
                "tessera_chunk_cache_hits_total{tier=\"l2\"}" => c.l2_hits += v,
                "tessera_chunk_cache_misses_total{tier=\"l2\"}" => c.l2_misses += v,
                "tessera_chunk_decodes_total" => c.decodes += v,
                "tessera_process_cpu_seconds_total" => c.cpu[i] = v,
                _ => {}
            }
        }
    }
    c
}

fn ratio(hits: f64, misses: f64) -> String {
    if hits + misses == 0.0 {
        "-".into()
    } else {
        format!("{:.1} %", 100.0 * hits / (hits + misses))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = &args.api_key {
        headers.insert("Authorization", format!("Apikey {key}").parse()?);
    }
    if let Some(token) = &args.bearer {
        headers.insert("Authorization", format!("Bearer {token}").parse()?);
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(120))
        .build()?;
    let urls: Vec<String> = args
        .url
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    let before = counters(&http, &args.metrics).await;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.seconds);
    let tasks: Vec<_> = (0..args.clients)
        .map(|k| {
            tokio::spawn(client(
                http.clone(),
                urls.clone(),
                args.scenario.clone(),
                args.stack_path.clone(),
                k as u64 + 1,
                until,
            ))
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        all.bytes += t.bytes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let c = counters(&http, &args.metrics).await - before;
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> String {
        if all.latencies_us.is_empty() {
            return "-".into();
        }
        let i = ((all.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        format!("{:.2}", all.latencies_us[i] as f64 / 1000.0)
    };
    if args.header {
        println!(
            "| run | scenario | clients | req/s | p50 ms | p95 ms | p99 ms | errors | MB/s | L1 hits | L2 hits | L1+L2 hits | decodes |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    let ok = all.latencies_us.len() as f64;
    println!(
        "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |",
        args.label,
        args.scenario,
        args.clients,
        ok / elapsed,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        all.errors,
        all.bytes as f64 / elapsed / 1e6,
        ratio(c.l1_hits, c.l1_misses),
        ratio(c.l2_hits, c.l2_misses),
        ratio(c.l1_hits + c.l2_hits, c.decodes),
        c.decodes,
    );
    if !args.metrics.is_empty() && ok > 0.0 {
        let per_request: Vec<String> = args
            .metrics
            .iter()
            .zip(&c.cpu)
            .map(|(page, cpu)| format!("{page}: {:.0} us", cpu * 1e6 / ok))
            .collect();
        eprintln!("CPU per request: {}", per_request.join(", "));
    }
    Ok(())
}
