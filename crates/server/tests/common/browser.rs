//! A headless Chromium driven through chromedriver (W3C WebDriver over HTTP), for the
//! browser tests: pages, clicks, typing, cookies and screenshots kept as test artifacts.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use charter_testkit::http::{send, Request};
use serde_json::{json, Value};

pub struct Driver {
    child: Child,
    pub addr: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_driver() -> Option<Driver> {
    let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver { child, addr })
}

pub fn call(driver: &str, method: &str, path: &str, body: &Value) -> Value {
    let text = body.to_string();
    let req = Request::new(method, path).json(&text);
    let got = send(driver, &req).json(Value::Null);
    assert!(got["value"].get("error").is_none(), "{method} {path}: {got}");
    got["value"].clone()
}

/// One browser session: a fresh profile, so no cookie carries over.
pub struct Session<'a> {
    pub driver: &'a str,
    pub id: String,
}

impl Session<'_> {
    pub fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.id)
    }
    pub fn run(&self, script: &str) -> Value {
        call(self.driver, "POST", &self.path("/execute/sync"), &json!({ "script": script, "args": [] }))
    }
    pub fn go(&self, url: &str) {
        call(self.driver, "POST", &self.path("/url"), &json!({ "url": url }));
    }
    pub fn click(&self, id: &str) {
        let element = self.element(id);
        call(self.driver, "POST", &self.path(&format!("/element/{element}/click")), &json!({}));
    }
    pub fn wait_for(&self, condition: &str) {
        let start = Instant::now();
        while self.run(&format!("return !!({condition});")) != json!(true) {
            if start.elapsed() > Duration::from_secs(10) {
                let logs = self.run("return document.documentElement.outerHTML;");
                panic!("timed out waiting for {condition}; the page: {logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn cookies(&self) -> Vec<String> {
        let all = call(self.driver, "GET", &self.path("/cookie"), &json!({}));
        all.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    }
    /// Types `text` into the element with id `id`.
    pub fn type_into(&self, id: &str, text: &str) {
        let element = self.element(id);
        call(self.driver, "POST", &self.path(&format!("/element/{element}/value")), &json!({ "text": text }));
    }

    fn element(&self, id: &str) -> String {
        let found = call(
            self.driver,
            "POST",
            &self.path("/element"),
            &json!({ "using": "css selector", "value": format!("#{id}") }),
        );
        found.as_object().unwrap().values().next().unwrap().as_str().unwrap().to_owned()
    }

    /// The page's text.
    pub fn text(&self) -> String {
        self.run("return document.body.innerText;").as_str().unwrap_or_default().to_owned()
    }

    /// Keeps a screenshot of the page as `target/test-artifacts/{folder}/{name}.png`.
    pub fn screenshot_in(&self, folder: &str, name: &str) {
        use base64::Engine as _;
        let png = call(self.driver, "GET", &self.path("/screenshot"), &json!({}));
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Keeps a screenshot under `target/test-artifacts/banner/`.
    pub fn screenshot(&self, name: &str) {
        self.screenshot_in("banner", name);
    }
}

pub fn session(driver: &str) -> Session<'_> {
    let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,800"]
    } } } });
    let made = call(driver, "POST", "/session", &caps);
    Session { driver, id: made["sessionId"].as_str().unwrap().to_owned() }
}
