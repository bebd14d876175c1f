//! Helpers for driving the real `charter` binary.

#![allow(dead_code, unused_imports)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub fn charter() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_charter"));
    for var in [
        "CHARTER_DATA_DIR",
        "CHARTER_DATABASE_URL",
        "CHARTER_CONFIG",
        "CHARTER_LISTEN",
        "CHARTER_POLICY",
        "CHARTER_LOG_FORMAT",
    ] {
        c.env_remove(var);
    }
    c
}

pub use charter_testkit::files;
pub use charter_testkit::http::Response;

/// Runs `charter args...` in `cwd` and returns its output.
pub fn run(cwd: &Path, args: &[&str]) -> Output {
    charter().current_dir(cwd).args(args).output().expect("run charter")
}

/// A running `charter serve`. Its log is read as it is written, so a chatty server
/// never blocks on a full pipe.
pub struct Server {
    pub child: Child,
    pub addr: String,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `charter serve` on a free port with extra arguments; waits until it listens.
    pub fn start(cwd: &Path, args: &[&str]) -> Self {
        Self::start_with_env(cwd, args, &[])
    }

    /// Like [`Server::start`], with extra environment variables.
    pub fn start_with_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = charter()
            .current_dir(cwd)
            .envs(env.iter().copied())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn charter serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("charter listening on http://")
            .unwrap_or_else(|| {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!("unexpected first line {line:?}; stderr: {err}")
            })
            .to_owned();
        let mut stderr = child.stderr.take().unwrap();
        let logs = std::thread::spawn(move || {
            let mut logs = String::new();
            stderr.read_to_string(&mut logs).ok();
            logs
        });
        Self { child, addr, logs: Some(logs) }
    }

    /// Sends SIGTERM and waits; returns the exit status and everything logged.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        let status = self.child.wait().expect("wait");
        let logs = self.logs.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        (status, logs)
    }
}

/// A server left running by a failed test is stopped with it.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP request over a fresh connection.
pub fn http(addr: &str, method: &str, path: &str) -> Response {
    request(addr, method, path, None, "")
}

/// One HTTP request with an optional bearer token and a JSON body.
pub fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> Response {
    charter_testkit::http::send(addr, &charter_testkit::http::Request::new(method, path).token(token).json(body))
}
