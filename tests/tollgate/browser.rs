//! Browser tests: a headless Chromium follows the user guide
//! (`docs/user-guide.md`) step by step, the way a person would: it finds
//! fields by their labels and buttons by their visible text, types and
//! clicks, and looks at what the page shows.
//!
//! The walk takes the screenshots that illustrate the guide and compares
//! each with the committed one in `docs/screenshots/`: a visible change fails
//! the test, which writes the new picture and a diff (changed pixels in red)
//! under `target/screenshots/` and names them. `TOLLGATE_UPDATE_SCREENSHOTS=1`
//! rewrites the committed pictures on purpose. What changes from run to run
//! (the token, its last four characters, dates) is masked visibly by the
//! test before each picture, never faked by the product. The walk also reads the guide and fails when a **bold** label
//! of its numbered steps was not seen on the page, so the guide can not
//! drift from the product.
//!
//! The tests need Chromium at `/usr/bin/chromium` (`scripts/test` installs
//! it) and fail without it. One Chromium runs at a time.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::{
    PermissionDescriptor, PermissionSetting, SetPermissionParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetScriptExecutionDisabledParams;
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel, LogEntrySource};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::{EvaluateParams, EventExceptionThrown};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::layout::Point;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{self, ADMIN, Backend, PASSWORD, READER, TestApp, WRITER};

const CHROMIUM: &str = "/usr/bin/chromium";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;
/// How long a step may take before the test gives up on it. Generous: the
/// tests share two cores with the rest of the suite.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

const LEFT_PANEL: &str = "nav[aria-label=Main]";
const TABS: &str = "nav.tabs";

/// Several Chromiums at once are slow and flaky on a small machine.
static ONE_BROWSER_AT_A_TIME: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

// ---- the browser -----------------------------------------------------------

/// A headless Chromium with a profile of its own, closed at the end.
struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Chromium {
    async fn launch() -> Self {
        let turn = ONE_BROWSER_AT_A_TIME.lock().await;
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser tests need Chromium (scripts/test installs it with `apt-get install chromium`)"
        );
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(WIDTH, HEIGHT)
            .viewport(Viewport {
                width: WIDTH,
                height: HEIGHT,
                device_scale_factor: Some(1.0),
                emulating_mobile: false,
                is_landscape: true,
                has_touch: false,
            })
            .args([
                "disable-gpu",
                "disable-dev-shm-usage",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "no-first-run",
            ])
            // Nothing but the app under test: no request leaves the machine.
            .arg((
                "host-resolver-rules",
                "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
            ))
            .build()
            .expect("browser configuration");
        let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    break;
                }
            }
        });
        Self {
            browser,
            handler,
            _profile: profile,
            _turn: turn,
        }
    }

    /// A new tab on `app`, with the clipboard allowed for the app's origin
    /// and script errors collected.
    async fn tab(&self, app: &TestApp) -> Tab {
        for permission in ["clipboard-read", "clipboard-write"] {
            let mut descriptor = PermissionDescriptor::new(permission);
            descriptor.allow_without_sanitization = Some(true);
            let grant = SetPermissionParams::builder()
                .permission(descriptor)
                .setting(PermissionSetting::Granted)
                .origin(app.address.clone())
                .build()
                .expect("permission");
            self.browser
                .execute(grant)
                .await
                .expect("grant clipboard permission");
        }
        let page = self
            .browser
            .new_page("about:blank")
            .await
            .expect("a new tab");
        page.enable_log().await.expect("enable the log domain");
        let problems = Arc::new(Mutex::new(Vec::new()));
        let mut exceptions = page
            .event_listener::<EventExceptionThrown>()
            .await
            .expect("listen to exceptions");
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = exceptions.next().await {
                let details = &event.exception_details;
                let text = details
                    .exception
                    .as_ref()
                    .and_then(|e| e.description.clone())
                    .unwrap_or_else(|| details.text.clone());
                sink.lock()
                    .expect("problems")
                    .push(format!("script error: {text}"));
            }
        });
        let mut log = page
            .event_listener::<EventEntryAdded>()
            .await
            .expect("listen to the log");
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = log.next().await {
                // A page answered with an error status (a form sent back
                // with 422) is not a problem; a stylesheet, script, font or
                // icon that fails to load is.
                let page = event.entry.source == LogEntrySource::Network
                    && !event
                        .entry
                        .url
                        .as_deref()
                        .is_some_and(|u| u.contains("/static/"));
                if event.entry.level == LogEntryLevel::Error && !page {
                    let url = event.entry.url.clone().unwrap_or_default();
                    sink.lock()
                        .expect("problems")
                        .push(format!("console error: {} {url}", event.entry.text));
                }
            }
        });
        Tab {
            page,
            base: app.address.clone(),
            seen: BTreeSet::new(),
            shots: Vec::new(),
            problems,
        }
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

// ---- a tab, driven like a person -------------------------------------------

/// Finds the visible elements of `kinds` whose text is exactly `label`,
/// inside `scope` elements that contain the text `near`. While a modal
/// dialog is open, only what is inside it can be reached.
const FIND: &str = r#"(scope, near, kinds, label) => {
  const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
  const modal = document.querySelector("dialog:modal");
  let roots = Array.from(document.querySelectorAll(scope)).filter((r) => !near || norm(r.innerText).includes(near));
  if (modal) roots = roots.flatMap((r) => (r.contains(modal) ? [modal] : modal.contains(r) ? [r] : []));
  const found = [];
  for (const root of roots) {
    for (const el of root.querySelectorAll(kinds)) {
      const text = el.matches("input") ? el.value : el.innerText;
      if (norm(text) === label && el.checkVisibility() && !found.includes(el)) found.push(el);
    }
  }
  return found;
}"#;

const CLICKABLE: &str = "a, button, input[type=submit], input[type=button], summary";

struct Tab {
    page: Page,
    base: String,
    /// Every label this walk found as visible text on a page.
    seen: BTreeSet<String>,
    /// The screenshots taken, by file name.
    shots: Vec<String>,
    /// Script errors and console errors (CSP violations among them).
    problems: Arc<Mutex<Vec<String>>>,
}

impl Tab {
    // -- plumbing --

    async fn try_eval(&self, js: &str) -> Result<Value, String> {
        self.evaluate(js, false).await
    }

    /// Evaluates `js` in the page, awaiting a promise; `gesture` lets it do
    /// what only a user's action may (read the clipboard).
    async fn evaluate(&self, js: &str, gesture: bool) -> Result<Value, String> {
        let params = EvaluateParams::builder()
            .expression(js)
            .await_promise(true)
            .return_by_value(true)
            .user_gesture(gesture)
            .build()
            .map_err(|e| e.to_string())?;
        let result = self
            .page
            .evaluate_expression(params)
            .await
            .map_err(|e| e.to_string())?;
        Ok(result.value().cloned().unwrap_or(Value::Null))
    }

    async fn eval(&self, js: &str) -> Value {
        self.try_eval(js)
            .await
            .unwrap_or_else(|e| panic!("evaluating `{js}` failed: {e}"))
    }

    /// Polls `check` until it answers something other than null or false.
    async fn wait_for(&self, what: &str, check: &str) -> Value {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            match self.try_eval(check).await {
                Ok(Value::Null | Value::Bool(false)) => {}
                Ok(value) => return value,
                Err(e) => last = e,
            }
            if started.elapsed() > STEP_TIMEOUT {
                panic!(
                    "timed out waiting until {what} (last error: {last})\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Where the tab is and what it shows, for failure messages.
    async fn describe(&self) -> String {
        let state = self
            .try_eval("JSON.stringify({url: location.href, text: document.body ? document.body.innerText.slice(0, 2000) : ''})")
            .await
            .unwrap_or_default();
        let problems = self.problems.lock().expect("problems").join("\n");
        format!("page: {state}\nproblems: {problems}")
    }

    /// Marks the current document, so that `wait_for_new_page` can tell
    /// when the next one has replaced it.
    async fn mark_page(&self) {
        self.wait_for(
            "the page can be marked",
            "(document.documentElement.dataset.walkOld = '1') && true",
        )
        .await;
    }

    async fn wait_for_new_page(&self, path: &str) {
        let check = format!(
            "document.documentElement.dataset.walkOld !== '1' && document.readyState === 'complete' && location.pathname === {}",
            json!(path)
        );
        self.wait_for(&format!("the page {path} has loaded"), &check)
            .await;
    }

    async fn goto(&self, path: &str) {
        self.page
            .goto(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        self.wait_for_new_page(path).await;
    }

    async fn path(&self) -> String {
        self.eval("location.pathname")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    // -- looking --

    /// Waits until an element shows exactly `label`, and records it.
    async fn see(&mut self, label: &str) {
        let check = format!(
            "Array.from(document.body.querySelectorAll('*')).some((el) => el.innerText !== undefined && el.innerText.replace(/\\s+/g, ' ').trim() === {} && el.checkVisibility())",
            json!(label)
        );
        self.wait_for(&format!("“{label}” is visible"), &check)
            .await;
        self.seen.insert(label.to_owned());
    }

    /// Waits until the page's visible text contains `text`.
    async fn see_text(&self, text: &str) {
        let check = format!(
            "document.body.innerText.replace(/\\s+/g, ' ').includes({})",
            json!(text)
        );
        self.wait_for(&format!("the page says “{text}”"), &check)
            .await;
    }

    async fn visible_text(&self) -> String {
        self.eval("document.body.innerText.replace(/\\s+/g, ' ')")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// How many visible clickable elements show `label` in `scope`.
    async fn count_clickable(&self, scope: &str, label: &str) -> usize {
        let js = format!(
            "({FIND})({}, '', {}, {}).length",
            json!(scope),
            json!(CLICKABLE),
            json!(label)
        );
        self.eval(&js).await.as_u64().unwrap_or_default() as usize
    }

    /// Whether the one clickable `label` in `scope` is disabled.
    async fn is_disabled(&mut self, scope: &str, label: &str) -> bool {
        let js = format!(
            "(() => {{ const found = ({FIND})({}, '', {}, {}); return found.length === 1 ? {{disabled: found[0].disabled === true}} : null; }})()",
            json!(scope),
            json!(CLICKABLE),
            json!(label)
        );
        let state = self
            .wait_for(&format!("one “{label}” is visible in {scope}"), &js)
            .await;
        self.seen.insert(label.to_owned());
        state["disabled"].as_bool().unwrap_or(false)
    }

    /// The open modal dialog's heading, or None when no modal is open.
    async fn modal_title(&self) -> Option<String> {
        self.eval("(() => { const d = document.querySelector('dialog:modal'); return d ? d.querySelector('h2').innerText : null; })()")
            .await
            .as_str()
            .map(str::to_owned)
    }

    async fn wait_for_modal(&mut self, title: &str) {
        let check = format!(
            "(() => {{ const d = document.querySelector('dialog:modal'); return !!d && d.querySelector('h2').innerText.trim() === {}; }})()",
            json!(title)
        );
        self.wait_for(&format!("the dialog “{title}” is open as a modal"), &check)
            .await;
        self.seen.insert(title.to_owned());
    }

    async fn wait_for_no_modal(&self) {
        self.wait_for("no dialog is open", "document.querySelector('dialog:modal') === null && document.querySelector('dialog[open]') === null").await;
    }

    // -- acting --

    /// Moves the mouse onto the element that `locate` (a JavaScript
    /// expression) finds and clicks, as soon as nothing covers it.
    async fn click_on(&self, what: &str, locate: &str) {
        let js = format!(
            "(() => {{
              const el = {locate};
              if (!el || el.disabled) return null;
              el.scrollIntoView({{block: 'center', inline: 'center', behavior: 'instant'}});
              const r = el.getBoundingClientRect();
              const x = r.left + r.width / 2, y = r.top + r.height / 2;
              const hit = document.elementFromPoint(x, y);
              return hit && el.contains(hit) ? {{x, y}} : null;
            }})()"
        );
        let at = self.wait_for(&format!("{what} can be clicked"), &js).await;
        let point = Point {
            x: at["x"].as_f64().unwrap_or_default(),
            y: at["y"].as_f64().unwrap_or_default(),
        };
        self.page
            .click(point)
            .await
            .unwrap_or_else(|e| panic!("click {what}: {e}"));
    }

    /// Clicks the one visible button or link showing `label` inside `scope`
    /// (a CSS selector) elements that contain the text `near`.
    async fn click_in(&mut self, scope: &str, near: &str, label: &str) {
        let locate = format!(
            "(() => {{ const found = ({FIND})({}, {}, {}, {}); return found.length === 1 ? found[0] : null; }})()",
            json!(scope),
            json!(near),
            json!(CLICKABLE),
            json!(label)
        );
        self.click_on(&format!("one enabled “{label}” in {scope} {near}"), &locate)
            .await;
        self.seen.insert(label.to_owned());
    }

    async fn click(&mut self, label: &str) {
        self.click_in("body", "", label).await;
    }

    /// Clicks `label` and waits for the page at `path` to replace this one.
    async fn follow_in(&mut self, scope: &str, near: &str, label: &str, path: &str) {
        self.mark_page().await;
        self.click_in(scope, near, label).await;
        self.wait_for_new_page(path).await;
    }

    async fn follow(&mut self, label: &str, path: &str) {
        self.follow_in("body", "", label, path).await;
    }

    /// The CSS selector of the form field labelled `label`.
    async fn field(&mut self, label: &str) -> String {
        let js = format!(
            "(() => {{
              const l = Array.from(document.querySelectorAll('label')).find((l) => l.innerText.replace(/\\s+/g, ' ').trim() === {} && l.checkVisibility());
              return l && l.control && l.control.id ? '#' + l.control.id : null;
            }})()",
            json!(label)
        );
        let selector = self
            .wait_for(&format!("a field labelled “{label}” is visible"), &js)
            .await;
        self.seen.insert(label.to_owned());
        selector.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks into the field labelled `label`, selects what it holds and
    /// types `text` over it.
    async fn fill(&mut self, label: &str, text: &str) {
        let selector = self.field(label).await;
        let field = format!("document.querySelector({})", json!(selector));
        self.click_on(&format!("the field “{label}”"), &field).await;
        self.wait_for(
            &format!("the field “{label}” has the focus"),
            &format!("document.activeElement === {field}"),
        )
        .await;
        self.eval(&format!("{field}.select()")).await;
        let keyboard = self.page.find_element("body").await.expect("the page body");
        keyboard
            .type_str(text)
            .await
            .unwrap_or_else(|e| panic!("type into “{label}”: {e}"));
        let value = self.eval(&format!("{field}.value")).await;
        assert_eq!(value.as_str(), Some(text), "“{label}” holds what was typed");
    }

    async fn press(&self, key: &str) {
        let keyboard = self.page.find_element("body").await.expect("the page body");
        keyboard
            .press_key(key)
            .await
            .unwrap_or_else(|e| panic!("press {key}: {e}"));
    }

    /// The text of the focused element.
    async fn focused_text(&self) -> String {
        self.eval("(document.activeElement.innerText || document.activeElement.value || '').trim()")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn focus_is_in_modal(&self) -> bool {
        self.eval("(() => { const d = document.querySelector('dialog:modal'); return !!d && d.contains(document.activeElement) && document.activeElement !== d; })()")
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// What the clipboard holds (the tab may read it: see `Chromium::tab`).
    async fn clipboard(&self) -> Result<String, String> {
        self.page
            .bring_to_front()
            .await
            .map_err(|e| e.to_string())?;
        match self
            .evaluate("navigator.clipboard.readText()", true)
            .await?
        {
            Value::String(text) => Ok(text),
            other => Err(format!("the clipboard answered {other}")),
        }
    }

    // -- pictures --

    /// Takes a screenshot of the viewport for the user guide.
    async fn screenshot(&mut self, name: &str) {
        self.eval("document.documentElement.classList.add('screenshot')")
            .await;
        // Park the mouse where it lights nothing up.
        self.page
            .move_mouse(Point {
                x: 2.0,
                y: HEIGHT as f64 - 2.0,
            })
            .await
            .expect("move the mouse away");
        let fonts = self
            .eval("document.fonts.ready.then(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(document.fonts.status)))))")
            .await;
        assert_eq!(
            fonts.as_str(),
            Some("loaded"),
            "fonts are loaded before the screenshot {name}"
        );
        self.eval(MASK_DYNAMIC).await;
        let png = self
            .page
            .screenshot(
                ScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .build(),
            )
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        self.eval(UNMASK_DYNAMIC).await;
        self.eval("document.documentElement.classList.remove('screenshot')")
            .await;
        let committed = repository().join("docs").join("screenshots").join(name);
        if std::env::var("TOLLGATE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            std::fs::write(&committed, &png)
                .unwrap_or_else(|e| panic!("write {}: {e}", committed.display()));
        } else {
            compare_with_committed(name, &png, &committed);
        }
        self.shots.push(name.to_owned());
    }

    // -- checks --

    /// Fails when a script error or console error happened in this tab.
    fn assert_no_problems(&self) {
        let problems = self.problems.lock().expect("problems");
        assert!(
            problems.is_empty(),
            "the pages reported problems:\n{}",
            problems.join("\n")
        );
    }
}

/// Masks what differs from run to run, visibly (a hatched box with a
/// fixed text: `.screenshot-mask` in the stylesheet), remembering what it hid so that `UNMASK_DYNAMIC` puts it back.
const MASK_DYNAMIC: &str = r#"(() => {
  const hidden = [];
  const mask = (el, text) => {
    hidden.push([el, el.textContent]);
    el.textContent = text;
    el.classList.add('screenshot-mask');
  };
  document.querySelectorAll('#tokens-table tbody tr, #workspace-tokens tbody tr').forEach((row) => {
    const code = row.querySelector('code');
    if (code) mask(code, 'tgp_…····');
    row.querySelectorAll('td').forEach((cell) => {
      if (/\d{4}-\d{2}-\d{2}/.test(cell.textContent) && !cell.querySelector('a, button')) {
        const badge = cell.querySelector('.badge');
        mask(badge || cell, badge ? 'Expired ··········' : '··········');
      }
    });
  });
  const field = document.getElementById('issued-token');
  if (field) {
    hidden.push([field, null, field.value]);
    field.value = 'tgp_ masked in the guide ····················';
    field.classList.add('screenshot-mask');
  }
  window.__tollgateMasked = hidden;
  return hidden.length;
})()"#;

const UNMASK_DYNAMIC: &str = r#"(() => {
  for (const [el, text, value] of (window.__tollgateMasked || [])) {
    if (value !== undefined) el.value = value; else el.textContent = text;
    el.classList.remove('screenshot-mask');
  }
  window.__tollgateMasked = [];
})()"#;

/// A pixel counts as changed when a channel differs by more than this
/// (anti-aliasing noise stays below it)...
const PIXEL_TOLERANCE: u8 = 24;
/// ...and a picture as changed when more pixels than this did. Chromium
/// renders these pages byte for byte the same with the shipped font and a
/// fixed viewport, so one changed character must fail.
const CHANGED_PIXELS: usize = 4;

fn decode_png(bytes: &[u8], what: &str) -> (u32, u32, Vec<[u8; 4]>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut buf = vec![0; reader.output_buffer_size().expect("image size")];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let channels = info.color_type.samples();
    assert_eq!(
        info.bit_depth,
        png::BitDepth::Eight,
        "{what}: 8-bit pictures"
    );
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| match c {
            [r, g, b, a] => [*r, *g, *b, *a],
            [r, g, b] => [*r, *g, *b, 255],
            [l, a] => [*l, *l, *l, *a],
            [l] => [*l, *l, *l, 255],
            _ => [0, 0, 0, 0],
        })
        .collect();
    (info.width, info.height, pixels)
}

fn encode_png(width: u32, height: u32, pixels: &[[u8; 4]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("png header");
    writer.write_image_data(&pixels.concat()).expect("png data");
    writer.finish().expect("png end");
    out
}

/// How many pixels of `a` and `b` differ beyond the tolerance, and a diff
/// picture: the old picture dimmed, changed pixels in red.
fn diff(a: &[[u8; 4]], b: &[[u8; 4]]) -> (usize, Vec<[u8; 4]>) {
    let mut changed = 0;
    let picture = a
        .iter()
        .zip(b)
        .map(|(p, q)| {
            if p.iter()
                .zip(q)
                .any(|(x, y)| x.abs_diff(*y) > PIXEL_TOLERANCE)
            {
                changed += 1;
                [255, 0, 0, 255]
            } else {
                let grey = ((p[0] as u16 + p[1] as u16 + p[2] as u16) / 3 / 3 + 170) as u8;
                [grey, grey, grey, 255]
            }
        })
        .collect();
    (changed, picture)
}

/// Fails, with the new picture and a diff written under `target/`, when
/// `png` differs visibly from the committed picture.
fn compare_with_committed(name: &str, png: &[u8], committed: &Path) {
    let out = repository().join("target").join("screenshots");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let new_path = out.join(name);
    std::fs::write(&new_path, png).unwrap_or_else(|e| panic!("write {name}: {e}"));
    let old = std::fs::read(committed).unwrap_or_else(|e| {
        panic!(
            "{} can not be read ({e}); the new picture is {}. Set TOLLGATE_UPDATE_SCREENSHOTS=1 to commit it.",
            committed.display(),
            new_path.display()
        )
    });
    let (w, h, old) = decode_png(&old, name);
    let (nw, nh, new) = decode_png(png, name);
    assert_eq!(
        (w, h),
        (nw, nh),
        "{name}: the picture changed size; the new one is {}",
        new_path.display()
    );
    let (changed, picture) = diff(&old, &new);
    let share = changed as f64 / old.len() as f64;
    if changed > CHANGED_PIXELS {
        let diff_path = out.join(name.replace(".png", ".diff.png"));
        std::fs::write(&diff_path, encode_png(w, h, &picture))
            .unwrap_or_else(|e| panic!("write the diff of {name}: {e}"));
        panic!(
            "{name} looks different from docs/screenshots/{name}: {changed} pixels ({:.3} %) changed. New picture: {}; changes in red: {}. If the change is meant, set TOLLGATE_UPDATE_SCREENSHOTS=1 and commit the pictures.",
            share * 100.0,
            new_path.display(),
            diff_path.display()
        );
    }
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---- the steps every test shares -------------------------------------------

/// Signs in at /login with the labelled fields, as the guide says.
async fn sign_in(tab: &mut Tab, email: &str) {
    tab.goto("/login").await;
    tab.fill("Email", email).await;
    tab.fill("Password", PASSWORD).await;
    tab.follow("Sign in", "/profile").await;
}

/// From anywhere in the dashboard: Profile in the left panel, then the
/// Personal Access Tokens tab.
/// A fresh app and browser, signed in as `email`, on the Personal Access
/// Tokens tab.
async fn on_the_tokens_tab(email: &str) -> (Chromium, TestApp, Tab) {
    let chromium = Chromium::launch().await;
    let app = helpers::spawn_app(Backend::Sqlite).await;
    let mut tab = chromium.tab(&app).await;
    sign_in(&mut tab, email).await;
    open_tokens_tab(&mut tab).await;
    (chromium, app, tab)
}

async fn open_tokens_tab(tab: &mut Tab) {
    tab.follow_in(LEFT_PANEL, "", "Profile", "/profile").await;
    tab.follow_in(TABS, "", "Personal Access Tokens", "/profile/tokens")
        .await;
    tab.see("Personal Access Tokens").await;
}

/// Generates a token through the dialog and returns the secret shown once.
async fn generate_token(tab: &mut Tab, name: &str) -> String {
    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    tab.fill("Token name", name).await;
    tab.follow("Generate", "/profile/tokens/created").await;
    let secret = shown_token(tab).await;
    tab.follow("Close", "/profile/tokens").await;
    secret
}

/// The token in the show-once view's read-only field.
async fn shown_token(tab: &mut Tab) -> String {
    let selector = tab.field("Personal Access Token").await;
    let field = tab.eval(&format!("(() => {{ const f = document.querySelector({}); return {{value: f.value, readOnly: f.readOnly}}; }})()", json!(selector))).await;
    assert_eq!(
        field["readOnly"],
        json!(true),
        "the token is shown in a read-only field"
    );
    let secret = field["value"].as_str().unwrap_or_default().to_owned();
    assert!(
        secret.starts_with("tgp_") && secret.len() == 42,
        "a tgp_ token is shown: {secret:?}"
    );
    secret
}

async fn token_count(app: &TestApp) -> i64 {
    app.count("personal_access_tokens").await
}

async fn me_with_bearer(app: &TestApp, token: &str) -> StatusCode {
    helpers::api(
        app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&helpers::bearer(token)),
    )
    .await
    .status
}

/// The **bold** labels of the guide's numbered steps. A step runs on over
/// the indented lines below it; a label may wrap from one line to the next.
fn guide_step_labels(guide: &str) -> BTreeSet<String> {
    let mut steps: Vec<String> = Vec::new();
    let mut in_step = false;
    for line in guide.lines() {
        let starts_step = line
            .trim_start()
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if starts_step {
            steps.push(String::new());
        }
        in_step = starts_step || (in_step && !line.trim().is_empty() && line.starts_with(' '));
        if let Some(step) = steps.last_mut().filter(|_| in_step) {
            step.push(' ');
            step.push_str(line.trim());
        }
    }
    let mut labels = BTreeSet::new();
    for step in steps {
        // Between every other `**`: the bold parts.
        for bold in step.split("**").skip(1).step_by(2) {
            labels.insert(bold.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    labels
}

/// The screenshots the guide shows (`![…](screenshots/name.png)`).
fn guide_screenshots(guide: &str) -> BTreeSet<String> {
    guide
        .split("](screenshots/")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(name, _)| name.to_owned()))
        .collect()
}

// ---- the tests -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_follows_the_user_guide_and_sees_every_label_it_names() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    let mut tab = chromium.tab(&app).await;

    // Sign in, open Profile and the Personal Access Tokens tab.
    sign_in(&mut tab, WRITER).await;
    tab.see("Profile").await;
    open_tokens_tab(&mut tab).await;
    tab.see_text("Generated tokens are used to access the Tollgate API")
        .await;
    tab.see_text("No tokens yet.").await;
    tab.screenshot("tokens-tab.png").await;

    // Generate new token: a modal dialog with the focus inside it.
    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    assert!(
        tab.focus_is_in_modal().await,
        "the focus is inside the dialog"
    );
    tab.fill("Token name", "Deploy script").await;
    tab.see("Scope").await;
    tab.see("Expiration").await;
    let expiry = tab
        .eval("(() => { const s = document.getElementById('token-expiry'); return s.options[s.selectedIndex].text; })()")
        .await;
    assert_eq!(
        expiry,
        json!("90 days"),
        "tokens expire after 90 days unless chosen otherwise"
    );
    tab.screenshot("generate-dialog.png").await;
    tab.follow("Generate", "/profile/tokens/created").await;

    // The token is shown once, with Copy and the warning.
    tab.wait_for_modal("Your new token “Deploy script”").await;
    let secret = shown_token(&mut tab).await;
    tab.see("Copy").await;
    tab.see("Make sure you copy the generated token. You won't be able to see it again.")
        .await;
    tab.screenshot("token-shown-once.png").await;
    assert_eq!(
        shown_token(&mut tab).await,
        secret,
        "the mask is gone after the picture"
    );

    tab.click("Copy").await;
    tab.see_text("Copied to the clipboard.").await;
    assert_eq!(
        tab.clipboard().await.as_deref(),
        Ok(secret.as_str()),
        "the clipboard holds the token"
    );
    assert_eq!(
        me_with_bearer(&app, &secret).await,
        StatusCode::OK,
        "the copied token opens the API"
    );

    // Close: the table lists the token by name and hint, never the secret.
    tab.follow("Close", "/profile/tokens").await;
    tab.wait_for_no_modal().await;
    tab.see("Deploy script").await;
    tab.see(&format!("tgp_…{}", &secret[secret.len() - 4..]))
        .await;
    let html = tab.page.content().await.expect("page source");
    assert!(!html.contains(&secret), "the secret is never shown again");
    assert!(!tab.visible_text().await.contains(&secret));
    tab.screenshot("token-list.png").await;

    // Delete asks first; Cancel keeps the token.
    tab.click_in("#tokens-table tr", "Deploy script", "Delete")
        .await;
    tab.wait_for_modal("Delete token?").await;
    tab.see_text("“Deploy script” will stop working at once.")
        .await;
    tab.see("Yes, delete").await;
    tab.see("Cancel").await;
    tab.screenshot("delete-confirmation.png").await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    tab.see("Deploy script").await;
    assert_eq!(token_count(&app).await, 1, "Cancel keeps the token");
    assert_eq!(me_with_bearer(&app, &secret).await, StatusCode::OK);

    // Yes, delete removes it, and it stops working.
    tab.click_in("#tokens-table tr", "Deploy script", "Delete")
        .await;
    tab.wait_for_modal("Delete token?").await;
    tab.follow("Yes, delete", "/profile/tokens").await;
    tab.see_text("Token “Deploy script” deleted.").await;
    tab.see_text("No tokens yet.").await;
    assert_eq!(token_count(&app).await, 0, "Yes, delete removes the token");
    assert_eq!(
        me_with_bearer(&app, &secret).await,
        StatusCode::UNAUTHORIZED,
        "a deleted token stops working"
    );

    // Two tokens, then Revoke all (top right) with its confirmation.
    let first = generate_token(&mut tab, "CI pipeline").await;
    let second = generate_token(&mut tab, "Nightly backup").await;
    tab.see("CI pipeline").await;
    tab.see("Nightly backup").await;
    let position = tab
        .eval(&format!(
            "(() => {{ const b = ({FIND})('main', '', {}, 'Revoke all')[0].getBoundingClientRect(); const m = document.querySelector('main section').getBoundingClientRect(); return {{right: m.right - b.right, top: b.top - m.top, width: m.width}}; }})()",
            json!(CLICKABLE)
        ))
        .await;
    assert!(
        position["right"].as_f64().unwrap_or(f64::MAX) < 60.0
            && position["top"].as_f64().unwrap_or(f64::MAX) < 60.0,
        "Revoke all sits at the top right: {position}"
    );
    tab.click("Revoke all").await;
    tab.wait_for_modal("Revoke all your tokens?").await;
    tab.see_text("2 tokens will stop working at once.").await;
    tab.see("Yes, revoke all").await;
    tab.screenshot("revoke-all-confirmation.png").await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    assert_eq!(token_count(&app).await, 2, "Cancel keeps every token");

    tab.click("Revoke all").await;
    tab.wait_for_modal("Revoke all your tokens?").await;
    tab.follow("Yes, revoke all", "/profile/tokens").await;
    tab.see_text("2 tokens revoked.").await;
    tab.see_text("No tokens yet.").await;
    assert!(
        tab.is_disabled("main", "Revoke all").await,
        "Revoke all is greyed out when there is no token"
    );
    assert_eq!(token_count(&app).await, 0, "Revoke all removes every token");
    for token in [&first, &second] {
        assert_eq!(
            me_with_bearer(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "a revoked token stops working"
        );
    }
    tab.assert_no_problems();

    // The guide names only what the walk saw, and shows only its pictures.
    let guide = std::fs::read_to_string(repository().join("docs/user-guide.md"))
        .expect("docs/user-guide.md");
    let labels = guide_step_labels(&guide);
    for expected in [
        "Sign in",
        "Profile",
        "Personal Access Tokens",
        "Generate new token",
        "Generate",
        "Yes, delete",
        "Revoke all",
    ] {
        assert!(
            labels.contains(expected),
            "the guide's steps name **{expected}** (found {labels:?})"
        );
    }
    let unseen: Vec<_> = labels.iter().filter(|l| !tab.seen.contains(*l)).collect();
    assert!(
        unseen.is_empty(),
        "the guide names labels the walk did not see: {unseen:?} (seen: {:?})",
        tab.seen
    );
    let shots: BTreeSet<String> = tab.shots.iter().cloned().collect();
    assert_eq!(
        guide_screenshots(&guide),
        shots,
        "the guide shows exactly the screenshots the walk takes"
    );
    for shot in &shots {
        assert!(
            repository().join("docs/screenshots").join(shot).is_file(),
            "docs/screenshots/{shot} is committed"
        );
    }

    chromium.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_closes_the_generate_dialog_and_focus_returns_to_its_button() {
    let (chromium, mut app, mut tab) = on_the_tokens_tab(WRITER).await;

    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    assert!(
        tab.focus_is_in_modal().await,
        "the focus is inside the dialog"
    );
    assert_eq!(
        tab.focused_text().await,
        "",
        "the focus is in the empty Token name field"
    );
    tab.press("Escape").await;

    tab.wait_for_no_modal().await;
    assert_eq!(tab.modal_title().await, None);
    assert_eq!(
        tab.focused_text().await,
        "Generate new token",
        "the focus is back on the button that opened the dialog"
    );
    assert_eq!(tab.path().await, "/profile/tokens");
    assert_eq!(
        token_count(&app).await,
        0,
        "closing the dialog stores nothing"
    );
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_of_only_spaces_reopens_the_dialog_with_an_inline_error_and_stores_nothing() {
    let (chromium, mut app, mut tab) = on_the_tokens_tab(WRITER).await;

    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    tab.fill("Token name", "   ").await;
    tab.follow("Generate", "/profile/tokens").await;

    tab.wait_for_modal("New Personal Access Token").await;
    let error = tab
        .wait_for(
            "an inline error is shown in the dialog",
            "(() => { const d = document.querySelector('dialog:modal'); const e = d && d.querySelector('[role=alert]'); return e && e.checkVisibility() ? e.innerText : null; })()",
        )
        .await;
    assert_eq!(error.as_str(), Some("Enter a token name."));
    let invalid = tab
        .eval("document.getElementById('token-name').getAttribute('aria-invalid')")
        .await;
    assert_eq!(
        invalid.as_str(),
        Some("true"),
        "the field is marked invalid"
    );
    assert!(
        tab.focus_is_in_modal().await,
        "the focus is inside the re-shown dialog"
    );
    assert_eq!(token_count(&app).await, 0, "a bad name stores nothing");

    // Correcting the name goes on as usual.
    tab.fill("Token name", "Deploy script").await;
    tab.follow("Generate", "/profile/tokens/created").await;
    let secret = shown_token(&mut tab).await;
    assert_eq!(token_count(&app).await, 1);
    assert_eq!(me_with_bearer(&app, &secret).await, StatusCode::OK);
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_generate_delete_and_revoke_all_work_through_their_own_pages() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    let mut tab = chromium.tab(&app).await;
    tab.page
        .execute(SetScriptExecutionDisabledParams::new(true))
        .await
        .expect("disable JavaScript");
    sign_in(&mut tab, WRITER).await;
    open_tokens_tab(&mut tab).await;
    let scripted = tab
        .eval("document.documentElement.classList.contains('js')")
        .await;
    assert_eq!(scripted, json!(false), "the page script did not run");

    // Generate new token leads to its own page.
    tab.follow("Generate new token", "/profile/tokens/new")
        .await;
    tab.see("New Personal Access Token").await;
    tab.fill("Token name", "No script").await;
    tab.follow("Generate", "/profile/tokens/created").await;
    let secret = shown_token(&mut tab).await;
    tab.see_text("Make sure you copy the generated token. You won't be able to see it again.")
        .await;
    assert_eq!(me_with_bearer(&app, &secret).await, StatusCode::OK);
    tab.follow("Close", "/profile/tokens").await;
    tab.see("No script").await;

    // Delete leads to a confirmation page; Cancel keeps, Yes, delete removes.
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM personal_access_tokens WHERE name = 'No script'")
            .fetch_one(app.db().pool())
            .await
            .expect("the token's id");
    let delete_page = format!("/profile/tokens/{id}/delete");
    tab.follow_in("#tokens-table tr", "No script", "Delete", &delete_page)
        .await;
    tab.see_text("will stop working at once").await;
    tab.follow("Cancel", "/profile/tokens").await;
    assert_eq!(token_count(&app).await, 1, "Cancel keeps the token");
    tab.follow_in("#tokens-table tr", "No script", "Delete", &delete_page)
        .await;
    tab.follow("Yes, delete", "/profile/tokens").await;
    tab.see_text("Token “No script” deleted.").await;
    assert_eq!(token_count(&app).await, 0);
    assert_eq!(
        me_with_bearer(&app, &secret).await,
        StatusCode::UNAUTHORIZED
    );

    // Revoke all leads to a confirmation page that counts the tokens.
    for name in ["First", "Second"] {
        tab.follow("Generate new token", "/profile/tokens/new")
            .await;
        tab.fill("Token name", name).await;
        tab.follow("Generate", "/profile/tokens/created").await;
        tab.follow("Close", "/profile/tokens").await;
    }
    tab.follow("Revoke all", "/profile/tokens/revoke-all").await;
    tab.see_text("2 tokens will stop working at once.").await;
    tab.follow("Cancel", "/profile/tokens").await;
    assert_eq!(token_count(&app).await, 2, "Cancel keeps every token");
    tab.follow("Revoke all", "/profile/tokens/revoke-all").await;
    tab.follow("Yes, revoke all", "/profile/tokens").await;
    tab.see_text("No tokens yet.").await;
    assert!(
        tab.is_disabled("main", "Revoke all").await,
        "Revoke all is greyed out"
    );
    assert_eq!(token_count(&app).await, 0);
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_member_sees_the_tab_and_why_there_is_no_generate_button() {
    let (chromium, mut app, mut tab) = on_the_tokens_tab(READER).await;

    tab.see_text("Only members with the Read-Write or Admin role can generate access tokens.")
        .await;
    tab.see_text("Ask a workspace Admin to change your role if you need one.")
        .await;
    assert_eq!(
        tab.count_clickable("main", "Generate new token").await,
        0,
        "no Generate new token button"
    );
    assert!(
        tab.is_disabled("main", "Revoke all").await,
        "Revoke all is greyed out"
    );
    tab.see_text("Contact your workspace Admin").await;
    tab.see("Ada Admin").await;
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copied_token_opens_the_api_with_bearer_and_basic() {
    let (chromium, mut app, mut tab) = on_the_tokens_tab(ADMIN).await;

    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    tab.fill("Token name", "API check").await;
    tab.follow("Generate", "/profile/tokens/created").await;
    let shown = shown_token(&mut tab).await;
    tab.click("Copy").await;
    tab.see_text("Copied to the clipboard.").await;
    let copied = tab.clipboard().await.expect("the clipboard can be read");
    assert_eq!(copied, shown, "Copy puts the token on the clipboard");

    let bearer = helpers::api(
        &app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&helpers::bearer(&copied)),
    )
    .await;
    assert_eq!(bearer.status, StatusCode::OK, "Bearer: {}", bearer.body);
    assert_eq!(
        bearer.json()["user"]["email"],
        json!(ADMIN),
        "{}",
        bearer.body
    );
    let basic = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.address))
        .basic_auth(ADMIN, Some(&copied))
        .send()
        .await
        .expect("API request");
    assert_eq!(
        basic.status(),
        StatusCode::OK,
        "Basic with the email and the token"
    );
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

#[test]
fn guide_labels_are_read_from_numbered_steps_only() {
    let guide = "# Title\n\nIntro with **Not a step**.\n\n1. Click **Profile** in the\n   left panel, then **Personal Access\n   Tokens**.\n\n   ![Tab](screenshots/tab.png)\n2. Click **Generate**.\n\n## Permissions\n\n**Read-Write** members.\n";
    let labels: Vec<_> = guide_step_labels(guide).into_iter().collect();
    assert_eq!(labels, ["Generate", "Personal Access Tokens", "Profile"]);
    assert_eq!(
        guide_screenshots(guide).into_iter().collect::<Vec<_>>(),
        ["tab.png"]
    );
}
