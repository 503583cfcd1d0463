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
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetScriptExecutionDisabledParams,
};
use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel, LogEntrySource};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EvaluateParams, EventConsoleApiCalled, EventExceptionThrown,
};
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
/// A phone held upright.
const PHONE_WIDTH: u32 = 390;
const PHONE_HEIGHT: u32 = 844;
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
        let page = self
            .browser
            .new_page("about:blank")
            .await
            .expect("a new tab");
        self.grant_clipboard(app).await;
        Tab::watch(page, app).await
    }

    /// A tab in a browser context of its own: its own cookies, as a second
    /// person on another computer.
    async fn tab_of_someone_else(&self, app: &TestApp) -> Tab {
        let context = self
            .browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .expect("a second browser context");
        let target = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context)
            .build()
            .expect("a target in the second context");
        let page = self
            .browser
            .new_page(target)
            .await
            .expect("a tab in the second context");
        let tab = Tab::watch(page, app).await;
        tab.resize(WIDTH, HEIGHT).await;
        tab
    }

    async fn grant_clipboard(&self, app: &TestApp) {
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
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

impl Tab {
    /// Collects the tab's script errors, console errors and the page's own
    /// `console.error` calls.
    async fn watch(page: Page, app: &TestApp) -> Tab {
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
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .expect("listen to console calls");
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = console.next().await {
                if event.r#type == ConsoleApiCalledType::Error {
                    let text: Vec<String> = event
                        .args
                        .iter()
                        .map(|a| {
                            a.value
                                .as_ref()
                                .map(|v| v.to_string())
                                .or_else(|| a.description.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                    sink.lock()
                        .expect("problems")
                        .push(format!("console.error: {}", text.join(" ")));
                }
            }
        });
        Tab {
            page,
            base: app.address.clone(),
            seen: BTreeSet::new(),
            shots: Vec::new(),
            problems,
            width: WIDTH,
            height: HEIGHT,
        }
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
    /// The viewport.
    width: u32,
    height: u32,
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
        self.check_accessibility(name).await;
        self.eval("document.documentElement.classList.add('screenshot')")
            .await;
        // Park the mouse where it lights nothing up.
        self.page
            .move_mouse(Point {
                x: 2.0,
                y: self.height as f64 - 2.0,
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

    /// Picks the option showing `option` in the select labelled `label`.
    async fn choose(&mut self, label: &str, option: &str) {
        let selector = self.field(label).await;
        let js = format!(
            "(() => {{
              const s = document.querySelector({});
              const o = Array.from(s.options).find((o) => o.text.trim() === {});
              if (!o) return null;
              s.value = o.value;
              s.dispatchEvent(new Event('change', {{bubbles: true}}));
              return true;
            }})()",
            json!(selector),
            json!(option)
        );
        self.wait_for(&format!("“{label}” offers “{option}”"), &js)
            .await;
        self.seen.insert(option.to_owned());
    }

    /// The options of the select labelled `label`, as shown; each is
    /// recorded as seen.
    async fn options(&mut self, label: &str) -> Vec<String> {
        let selector = self.field(label).await;
        let js = format!(
            "Array.from(document.querySelector({}).options).map((o) => o.text.trim())",
            json!(selector)
        );
        let options: Vec<String> = self
            .eval(&js)
            .await
            .as_array()
            .map(|o| {
                o.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        self.seen.extend(options.iter().cloned());
        options
    }

    /// Clicks the checkbox labelled `label` until it is ticked.
    async fn tick(&mut self, label: &str) {
        let selector = self.field(label).await;
        let field = format!("document.querySelector({})", json!(selector));
        self.click_on(&format!("the checkbox “{label}”"), &field)
            .await;
        self.wait_for(&format!("“{label}” is ticked"), &format!("{field}.checked"))
            .await;
    }

    /// The text of the chosen option of the select labelled `label`.
    async fn chosen(&mut self, label: &str) -> String {
        let selector = self.field(label).await;
        let js = format!(
            "(() => {{ const s = document.querySelector({}); return s.options[s.selectedIndex].text; }})()",
            json!(selector)
        );
        self.eval(&js).await.as_str().unwrap_or_default().to_owned()
    }

    // -- the keyboard --

    /// Presses `key` (Tab, Enter, Escape or Space), with Shift when `shift`,
    /// the way a keyboard does: a key-down and a key-up event.
    async fn key(&self, key: &str, shift: bool) {
        let (value, code, text) = match key {
            "Tab" => ("Tab", 9, None),
            "Enter" => ("Enter", 13, Some("\r")),
            "Escape" => ("Escape", 27, None),
            "Space" => (" ", 32, Some(" ")),
            other => panic!("no such key in these tests: {other}"),
        };
        let event = |kind| {
            let with_text = matches!(kind, DispatchKeyEventType::KeyDown);
            let mut event = DispatchKeyEventParams::builder()
                .r#type(kind)
                .key(value)
                .code(key)
                .windows_virtual_key_code(code)
                .native_virtual_key_code(code)
                .modifiers(if shift { 8 } else { 0 });
            if let (Some(text), true) = (text, with_text) {
                event = event.text(text);
            }
            event.build().expect("a key event")
        };
        let down = if text.is_some() {
            DispatchKeyEventType::KeyDown
        } else {
            DispatchKeyEventType::RawKeyDown
        };
        for kind in [down, DispatchKeyEventType::KeyUp] {
            self.page
                .execute(event(kind))
                .await
                .unwrap_or_else(|e| panic!("press {key}: {e}"));
        }
    }

    /// What has the focus: its text (or the id of a field), and whether the
    /// focus can be seen (an outline or a shadow).
    async fn focus(&self) -> Value {
        self.eval(
            "(() => {
              const el = document.activeElement;
              if (!el || el === document.body || el === document.documentElement) return {text: '', body: true};
              const s = getComputedStyle(el);
              const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
              const shadow = s.boxShadow !== 'none';
              const field = el.matches('input, select, textarea');
              const text = field ? '#' + el.id : (el.innerText || '').replace(/\\s+/g, ' ').trim();
              return {text, visible: outline || shadow, body: false};
            })()",
        )
        .await
    }

    /// Presses Tab (or Shift-Tab) until the focus is on `target` (a label,
    /// or `#id` for a field), checking on every stop that the focus is
    /// visible.
    async fn tab_to(&mut self, target: &str, backwards: bool) {
        let mut path = Vec::new();
        for _ in 0..40 {
            self.key("Tab", backwards).await;
            let focus = self.focus().await;
            if focus["body"] == json!(true) {
                path.push("(the page)".to_owned());
                continue;
            }
            let text = focus["text"].as_str().unwrap_or_default().to_owned();
            assert_eq!(
                focus["visible"],
                json!(true),
                "the focus on “{text}” can be seen (an outline or a shadow)"
            );
            if text == target {
                if !target.starts_with('#') {
                    self.seen.insert(target.to_owned());
                }
                return;
            }
            path.push(text);
        }
        panic!(
            "Tab never reached “{target}”; it went through {path:?}\n{}",
            self.describe().await
        );
    }

    /// Presses Enter on what has the focus and waits for the page at
    /// `path` to replace this one.
    async fn enter_to(&self, path: &str) {
        self.mark_page().await;
        self.key("Enter", false).await;
        self.wait_for_new_page(path).await;
    }

    /// Types `text` into what has the focus (a field, or a list, which
    /// picks the first option that starts with it).
    /// Picks `expected` in the focused list `label` by typing `text`, as a
    /// keyboard user does. The browser's type-ahead can drop the first
    /// letters while the list is still taking the focus; it forgets what
    /// was typed after about a second (real time: that is the browser's
    /// own timer), so a second try starts afresh.
    async fn pick_by_typing(&mut self, label: &str, text: &str, expected: &str) {
        for _ in 0..3 {
            self.type_text(text).await;
            if self.chosen(label).await == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        }
        assert_eq!(
            self.chosen(label).await,
            expected,
            "typing “{text}” into {label}"
        );
    }

    async fn type_text(&self, text: &str) {
        let keyboard = self.page.find_element("body").await.expect("the page body");
        keyboard
            .type_str(text)
            .await
            .unwrap_or_else(|e| panic!("type “{text}”: {e}"));
    }

    /// Fails unless the focus is on `target` (a label, or `#id` for a
    /// field) and can be seen.
    async fn assert_focus_on(&self, target: &str, why: &str) {
        let focus = self.focus().await;
        assert_eq!(focus["text"], json!(target), "{why}");
        assert_eq!(
            focus["visible"],
            json!(true),
            "the focus on “{target}” can be seen (an outline or a shadow)"
        );
    }

    // -- viewports, accessibility --

    async fn resize(&self, width: u32, height: u32) {
        self.page
            .execute(SetDeviceMetricsOverrideParams::new(
                width as i64,
                height as i64,
                1.0,
                false,
            ))
            .await
            .expect("set the viewport");
    }

    /// Holds the tab like a phone.
    async fn as_phone(&mut self) {
        self.resize(PHONE_WIDTH, PHONE_HEIGHT).await;
        self.width = PHONE_WIDTH;
        self.height = PHONE_HEIGHT;
        self.wait_for(
            "the page is laid out for a phone",
            &format!("window.innerWidth === {PHONE_WIDTH}"),
        )
        .await;
    }

    /// Fails unless the page fits the screen's width: it never scrolls
    /// sideways, and every visible control lies inside the screen.
    async fn assert_fits_the_screen(&self, what: &str) {
        let state = self
            .eval(
                "(() => {
                  const width = window.innerWidth;
                  const outside = Array.from(document.querySelectorAll('a, button, input:not([type=hidden]), select, summary, textarea, label'))
                    .filter((el) => el.checkVisibility() && !el.closest('.visually-hidden, .skip-link'))
                    .filter((el) => { const r = el.getBoundingClientRect(); return r.width > 1 && (r.left < -1 || r.right > width + 1); })
                    .map((el) => (el.innerText || el.id || el.tagName).trim().slice(0, 40) + ' at ' + Math.round(el.getBoundingClientRect().left) + '..' + Math.round(el.getBoundingClientRect().right));
                  const wide = Array.from(document.querySelectorAll('body *'))
                    .filter((el) => el.checkVisibility() && el.getBoundingClientRect().right > width + 1 && !el.closest('.visually-hidden, .skip-link'))
                    .slice(-3)
                    .map((el) => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className + ' “' + (el.innerText || '').trim().slice(0, 40) + '” ends at ' + Math.round(el.getBoundingClientRect().right));
                  return {scroll: document.documentElement.scrollWidth, width, outside, wide};
                })()",
            )
            .await;
        let (scroll, width) = (state["scroll"].as_u64(), state["width"].as_u64());
        assert!(
            scroll.is_some() && scroll <= width,
            "{what}: the page is {scroll:?} px wide on a {width:?} px screen: it scrolls sideways (widest: {})",
            state["wide"]
        );
        assert_eq!(
            state["outside"],
            json!([]),
            "{what}: controls reach outside the {width:?} px screen"
        );
    }

    /// Runs axe-core on the page as it is (an open dialog included) and
    /// fails on any WCAG 2.1 A or AA violation.
    async fn check_accessibility(&self, what: &str) {
        let loaded = self.eval("typeof window.axe === 'object'").await;
        if loaded != json!(true) {
            self.evaluate(&format!("{}\n;true", *AXE), false)
                .await
                .unwrap_or_else(|e| panic!("load axe-core into the page: {e}"));
        }
        let violations = self
            .evaluate(
                "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']})
                   .then((r) => r.violations.map((v) => v.id + ' (' + v.impact + '): ' + v.help + '\\n    ' + v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary.replace(/\\s+/g, ' ')).join('\\n    ')))",
                false,
            )
            .await
            .unwrap_or_else(|e| panic!("axe-core on {what}: {e}"));
        let width = self.width;
        assert_eq!(
            violations,
            json!([]),
            "{what} ({width} px wide) breaks WCAG 2.1 AA:\n{}",
            violations
                .as_array()
                .map(|v| v
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"))
                .unwrap_or_default()
        );
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

/// axe-core, from the npm registry (`tests/browser-deps`, installed by
/// `scripts/test`): injected into the pages to check them, never served.
static AXE: LazyLock<String> = LazyLock::new(|| {
    let path = repository().join("tests/browser-deps/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} can not be read ({e}): the browser tests need axe-core; scripts/test installs it with `npm ci --prefix tests/browser-deps`",
            path.display()
        )
    })
});

/// Masks what differs from run to run, visibly (a hatched box with a
/// fixed text: `.screenshot-mask` in the stylesheet), remembering what it hid so that `UNMASK_DYNAMIC` puts it back.
const MASK_DYNAMIC: &str = r#"(() => {
  const hidden = [];
  const mask = (el, text) => {
    hidden.push([el, el.textContent]);
    el.textContent = text;
    el.classList.add('screenshot-mask');
  };
  document.querySelectorAll('#tokens-table tbody tr, #workspace-tokens tbody tr, #outside-policy-tokens tbody tr').forEach((row) => {
    const code = row.querySelector('code');
    if (code) mask(code, 'tgp_…····');
  });
  // When a token was last used is written in batches: "Never" or a time.
  document.querySelectorAll('#workspace-tokens td[data-label="Last used"]').forEach((cell) => mask(cell, '··········'));
  document.querySelectorAll('main table tbody tr').forEach((row) => {
    row.querySelectorAll('td').forEach((cell) => {
      if (/\d{4}-\d{2}-\d{2}/.test(cell.textContent) && !cell.querySelector('a, button')) {
        const badge = cell.querySelector('.badge');
        mask(badge || cell, badge ? 'Expired ··········' : '··········');
      }
    });
  });
  // A date inside a sentence (a service account's "created on ..."): only
  // the date is hatched; the whole paragraph is put back afterwards.
  const date = /\d{4}-\d{2}-\d{2}( \d{2}:\d{2} UTC)?/g;
  document.querySelectorAll('main .page-head .subtitle').forEach((p) => {
    if (!/\d{4}-\d{2}-\d{2}/.test(p.textContent)) return;
    hidden.push([p, null, undefined, p.innerHTML]);
    p.innerHTML = p.innerHTML.replace(date, '<span class="screenshot-mask">··········</span>');
  });
  const field = document.getElementById('issued-token');
  if (field) {
    hidden.push([field, null, field.value]);
    field.value = 'tgp_ masked in the guide ····················';
    field.classList.add('screenshot-mask');
  }
  const link = document.getElementById('invite-link');
  if (link) {
    hidden.push([link, null, link.value]);
    link.value = 'http://tollgate.example/invitations/ masked in the guide ·····';
    link.classList.add('screenshot-mask');
  }
  window.__tollgateMasked = hidden;
  return hidden.length;
})()"#;

const UNMASK_DYNAMIC: &str = r#"(() => {
  for (const [el, text, value, html] of (window.__tollgateMasked || [])) {
    if (html !== undefined) { el.innerHTML = html; continue; }
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
    shown_secret(tab, "Personal Access Token").await
}

/// The token in the read-only field labelled `label`, shown once.
async fn shown_secret(tab: &mut Tab, label: &str) -> String {
    let selector = tab.field(label).await;
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

/// The guide's chapters (its `# ` headings), each followed by one walk.
const MEMBER_CHAPTER: &str = "Personal access tokens";
const ADMIN_CHAPTER: &str = "Administer a workspace";
const SERVICE_ACCOUNTS_CHAPTER: &str = "Service accounts";
const POLICY_CHAPTER: &str = "Token policy";
const PHONE_CHAPTER: &str = "On a phone";
const CHAPTERS: [&str; 5] = [
    MEMBER_CHAPTER,
    ADMIN_CHAPTER,
    SERVICE_ACCOUNTS_CHAPTER,
    POLICY_CHAPTER,
    PHONE_CHAPTER,
];

fn read_guide() -> String {
    std::fs::read_to_string(repository().join("docs/user-guide.md")).expect("docs/user-guide.md")
}

/// The chapter of `guide` headed `# {title}`, up to the next `# ` heading.
fn guide_chapter(guide: &str, title: &str) -> String {
    let heading = format!("# {title}");
    let mut lines = guide.lines().skip_while(|l| l.trim_end() != heading);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("the guide has a chapter “{heading}”"));
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.starts_with("# ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails unless the walk saw every **label** of the chapter's numbered
/// steps (and `expected` among them), and took exactly the chapter's
/// pictures.
fn assert_walk_follows_chapter(tab: &Tab, title: &str, expected: &[&str]) {
    let chapter = guide_chapter(&read_guide(), title);
    let labels = guide_step_labels(&chapter);
    for expected in expected {
        assert!(
            labels.contains(*expected),
            "the steps of “{title}” name **{expected}** (found {labels:?})"
        );
    }
    let unseen: Vec<_> = labels.iter().filter(|l| !tab.seen.contains(*l)).collect();
    assert!(
        unseen.is_empty(),
        "“{title}” names labels the walk did not see: {unseen:?} (seen: {:?})",
        tab.seen
    );
    let shots: BTreeSet<String> = tab.shots.iter().cloned().collect();
    assert_eq!(
        guide_screenshots(&chapter),
        shots,
        "“{title}” shows exactly the screenshots its walk takes"
    );
    for shot in &shots {
        assert!(
            repository().join("docs/screenshots").join(shot).is_file(),
            "docs/screenshots/{shot} is committed"
        );
    }
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
    tab.goto("/login").await;
    tab.check_accessibility("the sign-in page").await;
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
    assert_walk_follows_chapter(
        &tab,
        MEMBER_CHAPTER,
        &[
            "Sign in",
            "Profile",
            "Personal Access Tokens",
            "Generate new token",
            "Generate",
            "Yes, delete",
            "Revoke all",
        ],
    );

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

#[test]
fn the_guide_is_its_walked_chapters_and_shows_every_committed_picture() {
    let guide = read_guide();
    let headings: Vec<_> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(str::trim)
        .collect();
    assert_eq!(
        headings, CHAPTERS,
        "every chapter of the guide is followed by a browser walk"
    );
    let in_chapters: BTreeSet<String> = CHAPTERS
        .iter()
        .flat_map(|c| guide_screenshots(&guide_chapter(&guide, c)))
        .collect();
    assert_eq!(in_chapters, guide_screenshots(&guide));
    let committed: BTreeSet<String> = std::fs::read_dir(repository().join("docs/screenshots"))
        .expect("docs/screenshots")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        committed,
        guide_screenshots(&guide),
        "docs/screenshots holds exactly the pictures the guide shows"
    );
}

/// The invitation link's path (`/invitations/{code}`), from the field that
/// shows it once.
async fn shown_invitation(tab: &mut Tab) -> String {
    let selector = tab.field("Invitation link (shown once)").await;
    let link = tab
        .eval(&format!(
            "document.querySelector({}).value",
            json!(selector)
        ))
        .await;
    let link = link.as_str().unwrap_or_default();
    let at = link
        .find("/invitations/")
        .unwrap_or_else(|| panic!("an invitation link is shown: {link:?}"));
    link[at..].to_owned()
}

async fn status_of(app: &TestApp, path: &str) -> StatusCode {
    reqwest::get(format!("{}{path}", app.address))
        .await
        .expect("a request")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_follows_the_admin_chapter_and_sees_every_label_it_names() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    let (_, writer_token) = app.token_for(WRITER, "CI pipeline", "read-write").await;
    let mut tab = chromium.tab(&app).await;
    sign_in(&mut tab, ADMIN).await;

    // Members: everyone in the workspace, and Invite member.
    tab.follow_in(LEFT_PANEL, "", "Members", "/members").await;
    tab.see("Members").await;
    tab.see("Invite member").await;
    tab.see("Rita Reader").await;
    tab.screenshot("members.png").await;

    // Invite member: the form below the list, then the link, shown once.
    tab.click("Invite member").await;
    tab.wait_for(
        "the focus is in the invitation's Email field",
        "document.activeElement === document.getElementById('invite-email')",
    )
    .await;
    tab.fill("Email", "nina@example.com").await;
    assert_eq!(
        tab.chosen("Role").await,
        "Read-Write",
        "invitations default to Read-Write"
    );
    tab.seen.insert("Read-Write".to_owned());
    tab.follow("Create invitation", "/members/invite").await;
    tab.see_text("Invitation for nina@example.com (Read-Write) created.")
        .await;
    let link = shown_invitation(&mut tab).await;
    tab.see("Copy").await;
    tab.screenshot("invitation-link.png").await;
    tab.click("Copy").await;
    tab.see_text("Copied to the clipboard.").await;
    let copied = tab.clipboard().await.expect("the clipboard can be read");
    assert!(
        copied.ends_with(&link),
        "Copy puts the link on the clipboard: {copied}"
    );

    // The newcomer opens the link in a browser of their own and joins.
    let mut newcomer = chromium.tab_of_someone_else(&app).await;
    newcomer.goto(&link).await;
    newcomer.see("Join the workspace").await;
    newcomer
        .see_text("You were invited as nina@example.com with the Read-Write role.")
        .await;
    newcomer.fill("Your name", "Nina Newcomer").await;
    newcomer
        .fill("Choose a password", "a fine long password")
        .await;
    newcomer.screenshot("join-workspace.png").await;
    newcomer.follow("Join", "/profile").await;
    newcomer.see("Nina Newcomer").await;
    assert_eq!(
        status_of(&app, &link).await,
        StatusCode::NOT_FOUND,
        "the link works once"
    );
    open_tokens_tab(&mut newcomer).await;
    let nina_token = generate_token(&mut newcomer, "Nina's laptop").await;
    assert_eq!(me_with_bearer(&app, &nina_token).await, StatusCode::OK);
    newcomer.assert_no_problems();
    for label in ["Your name", "Choose a password", "Join"] {
        assert!(newcomer.seen.contains(label));
        tab.seen.insert(label.to_owned());
    }
    tab.shots.extend(newcomer.shots.iter().cloned());

    // Change her role: her token follows at once.
    tab.follow_in(LEFT_PANEL, "", "Members", "/members").await;
    tab.see("Nina Newcomer").await;
    tab.choose("Role of nina@example.com", "Read-Only").await;
    tab.follow_in("#members tr", "nina@example.com", "Save", "/members")
        .await;
    tab.see_text("Role changed. The member's tokens follow the new role at once.")
        .await;
    tab.screenshot("member-role.png").await;
    let refused = helpers::api(
        &app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&helpers::bearer(&nina_token)),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], json!("owner_read_only"));
    // Back to Read-Write: the token works again, within its scope.
    tab.choose("Role of nina@example.com", "Read-Write").await;
    tab.follow_in("#members tr", "nina@example.com", "Save", "/members")
        .await;
    tab.see_text("Role changed.").await;
    let me = helpers::api(
        &app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&helpers::bearer(&nina_token)),
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["role"], json!("read-write"));

    // Cancel an invitation, after Keep it.
    tab.click("Invite member").await;
    tab.fill("Email", "omar@example.com").await;
    tab.follow("Create invitation", "/members/invite").await;
    let omar = shown_invitation(&mut tab).await;
    tab.see("omar@example.com").await;
    tab.click_in("#invitations tr", "omar@example.com", "Cancel")
        .await;
    tab.wait_for_modal("Cancel invitation?").await;
    tab.see_text("The invitation for omar@example.com stops working at once.")
        .await;
    tab.see("Keep it").await;
    tab.see("Yes, cancel invitation").await;
    tab.screenshot("cancel-invitation.png").await;
    tab.click("Keep it").await;
    tab.wait_for_no_modal().await;
    assert_eq!(
        status_of(&app, &omar).await,
        StatusCode::OK,
        "Keep it keeps the invitation"
    );
    tab.click_in("#invitations tr", "omar@example.com", "Cancel")
        .await;
    tab.wait_for_modal("Cancel invitation?").await;
    tab.follow("Yes, cancel invitation", "/members").await;
    tab.see_text("Invitation for omar@example.com cancelled. Its link no longer works.")
        .await;
    assert_eq!(
        status_of(&app, &omar).await,
        StatusCode::NOT_FOUND,
        "a cancelled link is refused"
    );

    // Workspace tokens: every member's; Revoke all for one member.
    tab.follow_in(LEFT_PANEL, "", "Workspace tokens", "/workspace-tokens")
        .await;
    tab.see("2 tokens").await;
    tab.see("Nina's laptop").await;
    tab.see("CI pipeline").await;
    tab.screenshot("workspace-tokens.png").await;
    tab.choose("Member", "nina@example.com").await;
    tab.follow("Revoke member's tokens", "/workspace-tokens/revoke-all")
        .await;
    tab.see("Revoke every token of nina@example.com?").await;
    tab.see_text("1 token will stop working at once.").await;
    tab.screenshot("member-revoke-confirmation.png").await;
    tab.follow("Yes, revoke all", "/workspace-tokens").await;
    tab.see_text("1 token(s) of nina@example.com revoked.")
        .await;
    assert_eq!(
        me_with_bearer(&app, &nina_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_with_bearer(&app, &writer_token).await,
        StatusCode::OK,
        "other members' tokens go on working"
    );

    // Revoke all: the whole workspace, after its confirmation.
    tab.click_in("main", "", "Revoke all").await;
    tab.wait_for_modal("Revoke every token in Default?").await;
    tab.see_text("1 token will stop working at once.").await;
    tab.screenshot("workspace-revoke-all.png").await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    assert_eq!(token_count(&app).await, 1, "Cancel keeps every token");
    tab.click_in("main", "", "Revoke all").await;
    tab.wait_for_modal("Revoke every token in Default?").await;
    tab.follow("Yes, revoke all", "/workspace-tokens").await;
    tab.see_text("1 token(s) revoked in Default.").await;
    assert_eq!(token_count(&app).await, 0);
    assert_eq!(
        me_with_bearer(&app, &writer_token).await,
        StatusCode::UNAUTHORIZED
    );

    // The Audit log shows all of it, newest first.
    tab.follow_in(LEFT_PANEL, "", "Audit log", "/audit-log")
        .await;
    tab.see("Audit log").await;
    tab.see_text("workspace.tokens_revoked").await;
    tab.see_text("member.role_changed").await;
    tab.screenshot("audit-log.png").await;
    tab.assert_no_problems();

    assert_walk_follows_chapter(
        &tab,
        ADMIN_CHAPTER,
        &[
            "Members",
            "Invite member",
            "Create invitation",
            "Join",
            "Save",
            "Yes, cancel invitation",
            "Workspace tokens",
            "Revoke member's tokens",
            "Revoke all",
            "Audit log",
        ],
    );

    chromium.close().await;
    app.stop().await;
}

/// Every page and dialog the guide shows, on a phone: nothing scrolls
/// sideways, every control is on the screen and usable, axe-core finds
/// nothing; the tokens tab and the generate dialog are pictured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_the_guide_fits_a_phone() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    app.token_for(
        WRITER,
        "CI pipeline of the nightly release train",
        "read-write",
    )
    .await;
    let mut tab = chromium.tab(&app).await;
    tab.as_phone().await;
    tab.goto("/login").await;
    tab.assert_fits_the_screen("the sign-in page").await;
    tab.check_accessibility("the sign-in page").await;
    sign_in(&mut tab, ADMIN).await;
    tab.assert_fits_the_screen("the profile page").await;
    tab.check_accessibility("the profile page").await;

    open_tokens_tab(&mut tab).await;
    tab.assert_fits_the_screen("the empty tokens tab").await;
    tab.check_accessibility("the empty tokens tab").await;

    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    tab.fill("Token name", "Deploy script").await;
    tab.eval("window.scrollTo(0, 0)").await;
    tab.assert_fits_the_screen("the generate dialog").await;
    tab.screenshot("phone-generate-dialog.png").await;
    tab.follow("Generate", "/profile/tokens/created").await;
    tab.wait_for_modal("Your new token “Deploy script”").await;
    tab.assert_fits_the_screen("the new token, shown once")
        .await;
    tab.check_accessibility("the new token, shown once").await;
    tab.follow("Close", "/profile/tokens").await;
    generate_token(
        &mut tab,
        "A token with a rather long name for a small screen",
    )
    .await;
    tab.see("Deploy script").await;
    tab.eval("window.scrollTo(0, 0)").await;
    tab.assert_fits_the_screen("the tokens tab with tokens")
        .await;
    tab.screenshot("phone-tokens-tab.png").await;

    tab.click_in("#tokens-table tr", "Deploy script", "Delete")
        .await;
    tab.wait_for_modal("Delete token?").await;
    tab.assert_fits_the_screen("the delete confirmation").await;
    tab.check_accessibility("the delete confirmation").await;
    tab.follow("Yes, delete", "/profile/tokens").await;
    assert_eq!(
        app.count("personal_access_tokens").await,
        2,
        "Delete works on a phone"
    );
    tab.click_in("main", "", "Revoke all").await;
    tab.wait_for_modal("Revoke all your tokens?").await;
    tab.assert_fits_the_screen("the revoke-all confirmation")
        .await;
    tab.check_accessibility("the revoke-all confirmation").await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;

    // The Admin pages.
    tab.follow_in(LEFT_PANEL, "", "Members", "/members").await;
    tab.assert_fits_the_screen("the Members page").await;
    tab.check_accessibility("the Members page").await;
    tab.click("Invite member").await;
    tab.fill("Email", "a.rather.long.address.for.a.phone@example.com")
        .await;
    tab.follow("Create invitation", "/members/invite").await;
    let link = shown_invitation(&mut tab).await;
    tab.assert_fits_the_screen("the invitation link").await;
    tab.check_accessibility("the invitation link").await;
    tab.choose("Role of writer@example.com", "Read-Write").await;
    tab.follow_in("#members tr", "writer@example.com", "Save", "/members")
        .await;
    tab.see_text("Role changed.").await;
    tab.click_in(
        "#invitations tr",
        "a.rather.long.address.for.a.phone@example.com",
        "Cancel",
    )
    .await;
    tab.wait_for_modal("Cancel invitation?").await;
    tab.assert_fits_the_screen("the cancel-invitation confirmation")
        .await;
    tab.check_accessibility("the cancel-invitation confirmation")
        .await;
    tab.click("Keep it").await;
    tab.wait_for_no_modal().await;

    let mut newcomer = chromium.tab_of_someone_else(&app).await;
    newcomer.as_phone().await;
    newcomer.goto(&link).await;
    newcomer.see("Join the workspace").await;
    newcomer.assert_fits_the_screen("the invitation page").await;
    newcomer.check_accessibility("the invitation page").await;
    newcomer.assert_no_problems();

    tab.follow_in(LEFT_PANEL, "", "Workspace tokens", "/workspace-tokens")
        .await;
    tab.assert_fits_the_screen("the Workspace tokens page")
        .await;
    tab.check_accessibility("the Workspace tokens page").await;
    tab.choose("Member", "writer@example.com").await;
    tab.follow("Revoke member's tokens", "/workspace-tokens/revoke-all")
        .await;
    tab.assert_fits_the_screen("the member's revoke-all confirmation")
        .await;
    tab.check_accessibility("the member's revoke-all confirmation")
        .await;
    tab.follow("Cancel", "/workspace-tokens").await;
    tab.click_in("main", "", "Revoke all").await;
    tab.wait_for_modal("Revoke every token in Default?").await;
    tab.assert_fits_the_screen("the workspace's revoke-all confirmation")
        .await;
    tab.check_accessibility("the workspace's revoke-all confirmation")
        .await;
    tab.follow("Yes, revoke all", "/workspace-tokens").await;
    assert_eq!(
        app.count("personal_access_tokens").await,
        0,
        "Revoke all works on a phone"
    );

    tab.follow_in(LEFT_PANEL, "", "Audit log", "/audit-log")
        .await;
    tab.assert_fits_the_screen("the Audit log").await;
    tab.check_accessibility("the Audit log").await;

    // Service accounts: the list, the new account's page and its dialogs.
    tab.follow_in(LEFT_PANEL, "", "Service accounts", "/service-accounts")
        .await;
    tab.assert_fits_the_screen("the empty Service accounts page")
        .await;
    tab.check_accessibility("the empty Service accounts page")
        .await;
    tab.click("New service account").await;
    tab.fill("Name", "Release pipeline of the mobile apps")
        .await;
    follow_to_service_account(&mut tab, "Create service account").await;
    tab.assert_fits_the_screen("a service account's page").await;
    tab.check_accessibility("a service account's page").await;
    let account = "Release pipeline of the mobile apps";
    tab.click("Generate new token").await;
    tab.wait_for_modal(&format!("New token for {account}"))
        .await;
    tab.fill("Token name", "Store upload").await;
    tab.assert_fits_the_screen("the service account's generate dialog")
        .await;
    tab.check_accessibility("the service account's generate dialog")
        .await;
    let page = tab.path().await;
    tab.follow("Generate", &format!("{page}/tokens/created"))
        .await;
    tab.wait_for_modal(&format!("New token “Store upload” for {account}"))
        .await;
    tab.assert_fits_the_screen("the service account's token, shown once")
        .await;
    tab.check_accessibility("the service account's token, shown once")
        .await;
    tab.follow("Close", &page).await;
    tab.see("Store upload").await;
    tab.assert_fits_the_screen("a service account's page with a token")
        .await;
    tab.check_accessibility("a service account's page with a token")
        .await;
    for (button, title) in [
        ("Delete", "Delete token?".to_owned()),
        ("Revoke all", format!("Revoke every token of {account}?")),
        (
            "Delete service account",
            format!("Delete the service account {account}?"),
        ),
    ] {
        tab.click_in("main", "", button).await;
        tab.wait_for_modal(&title).await;
        tab.assert_fits_the_screen(&title).await;
        tab.check_accessibility(&title).await;
        tab.click("Cancel").await;
        tab.wait_for_no_modal().await;
    }
    tab.follow_in(LEFT_PANEL, "", "Service accounts", "/service-accounts")
        .await;
    tab.see(account).await;
    tab.assert_fits_the_screen("the Service accounts page with an account")
        .await;
    tab.check_accessibility("the Service accounts page with an account")
        .await;

    // The token policy: the service account's token is outside it.
    tab.follow_in(LEFT_PANEL, "", "Workspace tokens", "/workspace-tokens")
        .await;
    tab.choose("Maximum lifetime", "7 days").await;
    tab.follow("Save policy", "/workspace-tokens").await;
    tab.see("1 token is outside the policy").await;
    tab.assert_fits_the_screen("the Token policy with a token outside it")
        .await;
    tab.check_accessibility("the Token policy with a token outside it")
        .await;
    tab.click("Revoke tokens outside the policy").await;
    tab.wait_for_modal("Revoke the tokens outside the policy?")
        .await;
    tab.assert_fits_the_screen("the revoke-outside-policy confirmation")
        .await;
    tab.check_accessibility("the revoke-outside-policy confirmation")
        .await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    open_tokens_tab(&mut tab).await;
    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    assert_eq!(tab.options("Expiration").await, ["7 days"]);
    tab.assert_fits_the_screen("the generate dialog under a policy")
        .await;
    tab.check_accessibility("the generate dialog under a policy")
        .await;
    tab.assert_no_problems();

    assert_walk_follows_chapter(&tab, PHONE_CHAPTER, &[]);
    chromium.close().await;
    app.stop().await;
}

/// Signs in at /login by typing, Tab and Enter.
async fn sign_in_with_the_keyboard(tab: &mut Tab, email: &str) {
    tab.goto("/login").await;
    assert_eq!(
        tab.focus().await["text"],
        json!("#email"),
        "the Email field has the focus"
    );
    tab.type_text(email).await;
    tab.tab_to("#password", false).await;
    tab.type_text(PASSWORD).await;
    tab.enter_to("/profile").await;
}

/// The guide's main path with the keyboard alone: sign in, generate a
/// token, copy it, delete it after the confirmation; Escape closes a
/// dialog. Every stop of the focus can be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_path_works_with_the_keyboard_alone() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    let mut tab = chromium.tab(&app).await;

    sign_in_with_the_keyboard(&mut tab, WRITER).await;

    tab.tab_to("Personal Access Tokens", false).await;
    tab.mark_page().await;
    tab.key("Enter", false).await;
    tab.wait_for_new_page("/profile/tokens").await;

    // Escape closes the dialog; the focus goes back to its button.
    tab.tab_to("Generate new token", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("New Personal Access Token").await;
    assert_eq!(tab.focus().await["text"], json!("#token-name"));
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    assert_eq!(tab.focus().await["text"], json!("Generate new token"));

    // Generate: type the name, Enter sends the form.
    tab.key("Enter", false).await;
    tab.wait_for_modal("New Personal Access Token").await;
    let keyboard = tab.page.find_element("body").await.expect("the page body");
    keyboard.type_str("Keyboard").await.expect("type the name");
    tab.tab_to("Generate", false).await;
    tab.mark_page().await;
    tab.key("Enter", false).await;
    tab.wait_for_new_page("/profile/tokens/created").await;
    tab.wait_for_modal("Your new token “Keyboard”").await;
    let secret = shown_token(&mut tab).await;

    // Copy, then Close.
    tab.tab_to("Copy", false).await;
    tab.key("Enter", false).await;
    tab.see_text("Copied to the clipboard.").await;
    assert_eq!(tab.clipboard().await.as_deref(), Ok(secret.as_str()));
    tab.tab_to("Close", false).await;
    tab.mark_page().await;
    tab.key("Enter", false).await;
    tab.wait_for_new_page("/profile/tokens").await;
    assert_eq!(token_count(&app).await, 1);

    // Delete: the confirmation opens on Cancel; Shift-Tab goes back.
    tab.tab_to("Delete", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("Delete token?").await;
    assert_eq!(
        tab.focus().await["text"],
        json!("Cancel"),
        "the dialog opens on Cancel"
    );
    tab.tab_to("Yes, delete", false).await;
    tab.tab_to("Cancel", true).await;
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    assert_eq!(tab.focus().await["text"], json!("Delete"));
    assert_eq!(token_count(&app).await, 1, "Escape deletes nothing");
    tab.key("Enter", false).await;
    tab.wait_for_modal("Delete token?").await;
    tab.tab_to("Yes, delete", false).await;
    tab.mark_page().await;
    tab.key("Enter", false).await;
    tab.wait_for_new_page("/profile/tokens").await;
    tab.see_text("Token “Keyboard” deleted.").await;
    assert_eq!(token_count(&app).await, 0);
    assert_eq!(
        me_with_bearer(&app, &secret).await,
        StatusCode::UNAUTHORIZED
    );
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

/// The Admin chapter with the keyboard alone: Members, Invite member (the
/// link shown once, copied), a role changed, a member's tokens revoked on
/// Workspace tokens (Escape closes the workspace's Revoke all dialog, Cancel
/// leaves the member's confirmation page), the Audit log, and an invitation
/// cancelled (Escape first). Every stop of the focus can be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_chapter_works_with_the_keyboard_alone() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    let (_, writer_token) = app.token_for(WRITER, "CI pipeline", "read-write").await;
    let (_, admin_token) = app.token_for(ADMIN, "Admin laptop", "admin").await;
    let mut tab = chromium.tab(&app).await;
    sign_in_with_the_keyboard(&mut tab, ADMIN).await;

    // Members; Invite member puts the focus in the form's Email field.
    tab.tab_to("Members", false).await;
    tab.enter_to("/members").await;
    tab.tab_to("Invite member", false).await;
    tab.key("Enter", false).await;
    tab.wait_for(
        "the focus is in the invitation's Email field",
        "document.activeElement === document.getElementById('invite-email')",
    )
    .await;
    tab.assert_focus_on("#invite-email", "Invite member leads to the Email field")
        .await;
    tab.type_text("nina@example.com").await;
    tab.tab_to("#invite-role", false).await;
    tab.tab_to("Create invitation", false).await;
    tab.enter_to("/members/invite").await;
    tab.see_text("Invitation for nina@example.com (Read-Write) created.")
        .await;
    let link = shown_invitation(&mut tab).await;
    tab.tab_to("Copy", false).await;
    tab.key("Enter", false).await;
    tab.see_text("Copied to the clipboard.").await;
    let copied = tab.clipboard().await.expect("the clipboard can be read");
    assert!(
        copied.ends_with(&link),
        "Copy puts the link on the clipboard: {copied}"
    );

    // Change a role: typing picks the option in the focused list.
    let writer_id = app.user_id(WRITER).await;
    tab.tab_to(&format!("#role-{writer_id}"), false).await;
    tab.type_text("Read-O").await;
    assert_eq!(tab.chosen("Role of writer@example.com").await, "Read-Only");
    tab.tab_to("Save", false).await;
    tab.enter_to("/members").await;
    tab.see_text("Role changed. The member's tokens follow the new role at once.")
        .await;
    let refused = helpers::api(
        &app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&helpers::bearer(&writer_token)),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], json!("owner_read_only"));
    assert_eq!(
        tab.eval("document.getElementById('invite-link') === null")
            .await,
        json!(true),
        "the invitation link is shown once"
    );

    // Workspace tokens: the member's confirmation page, left with Cancel.
    tab.tab_to("Workspace tokens", false).await;
    tab.enter_to("/workspace-tokens").await;
    tab.see("2 tokens").await;
    tab.tab_to("#revoke-member", false).await;
    tab.pick_by_typing("Member", "writer", WRITER).await;
    tab.tab_to("Revoke member's tokens", false).await;
    tab.enter_to("/workspace-tokens/revoke-all").await;
    tab.see("Revoke every token of writer@example.com?").await;
    tab.see_text("1 token will stop working at once.").await;
    tab.tab_to("Cancel", false).await;
    tab.enter_to("/workspace-tokens").await;
    assert_eq!(token_count(&app).await, 2, "Cancel revokes nothing");

    // The workspace's Revoke all opens on Cancel; Escape closes it.
    tab.tab_to("Revoke all", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("Revoke every token in Default?").await;
    tab.assert_focus_on("Cancel", "the dialog opens on Cancel")
        .await;
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    tab.assert_focus_on("Revoke all", "the focus is back on Revoke all")
        .await;
    assert_eq!(token_count(&app).await, 2, "Escape revokes nothing");

    // Then the member's tokens, confirmed.
    tab.tab_to("#revoke-member", false).await;
    tab.pick_by_typing("Member", "writer", WRITER).await;
    tab.tab_to("Revoke member's tokens", false).await;
    tab.enter_to("/workspace-tokens/revoke-all").await;
    tab.tab_to("Yes, revoke all", false).await;
    tab.enter_to("/workspace-tokens").await;
    tab.see_text("1 token(s) of writer@example.com revoked.")
        .await;
    assert_eq!(token_count(&app).await, 1);
    assert_eq!(
        me_with_bearer(&app, &writer_token).await,
        StatusCode::UNAUTHORIZED,
        "the member's token is revoked"
    );
    assert_eq!(
        me_with_bearer(&app, &admin_token).await,
        StatusCode::OK,
        "other members' tokens go on working"
    );

    // The Audit log.
    tab.tab_to("Audit log", false).await;
    tab.enter_to("/audit-log").await;
    tab.see_text("workspace.tokens_revoked").await;
    tab.see_text("member.role_changed").await;
    tab.see_text("member.invited").await;

    // Cancel the invitation: Escape keeps it, then Yes, cancel invitation.
    tab.tab_to("Members", false).await;
    tab.enter_to("/members").await;
    tab.tab_to("Cancel", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("Cancel invitation?").await;
    tab.assert_focus_on("Keep it", "the dialog opens on Keep it")
        .await;
    tab.tab_to("Yes, cancel invitation", false).await;
    tab.tab_to("Keep it", true).await;
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    tab.assert_focus_on("Cancel", "the focus is back on Cancel")
        .await;
    assert_eq!(
        status_of(&app, &link).await,
        StatusCode::OK,
        "Escape keeps the invitation"
    );
    tab.key("Enter", false).await;
    tab.wait_for_modal("Cancel invitation?").await;
    tab.tab_to("Yes, cancel invitation", false).await;
    tab.enter_to("/members").await;
    tab.see_text("Invitation for nina@example.com cancelled. Its link no longer works.")
        .await;
    assert_eq!(
        status_of(&app, &link).await,
        StatusCode::NOT_FOUND,
        "a cancelled link is refused"
    );
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

async fn service_account_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE kind = 'service_account'")
        .fetch_one(app.db().pool())
        .await
        .expect("count the service accounts")
}

/// Clicks `label` and waits for the page of the service account that it
/// leads to (`/service-accounts/{id}`); answers that path.
async fn follow_to_service_account(tab: &mut Tab, label: &str) -> String {
    tab.mark_page().await;
    tab.click(label).await;
    wait_for_service_account_page(tab).await
}

/// Waits for a service account's page (`/service-accounts/{id}`) to replace
/// the page marked before; answers its path.
async fn wait_for_service_account_page(tab: &Tab) -> String {
    tab.wait_for(
        "a service account's page has loaded",
        r"document.documentElement.dataset.walkOld !== '1' && document.readyState === 'complete' && /^\/service-accounts\/\d+$/.test(location.pathname)",
    )
    .await;
    tab.path().await
}

/// Generates a token for the service account whose page (`account`) is
/// open, through its dialog, and answers the secret shown once.
async fn generate_service_token(tab: &mut Tab, account: &str, name: &str) -> String {
    let page = tab.path().await;
    tab.click("Generate new token").await;
    tab.wait_for_modal(&format!("New token for {account}"))
        .await;
    tab.fill("Token name", name).await;
    tab.follow("Generate", &format!("{page}/tokens/created"))
        .await;
    tab.wait_for_modal(&format!("New token “{name}” for {account}"))
        .await;
    let secret = shown_secret(tab, "Service account token").await;
    tab.follow("Close", &page).await;
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_follows_the_service_accounts_chapter_and_sees_every_label_it_names() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    let mut tab = chromium.tab(&app).await;
    sign_in(&mut tab, ADMIN).await;

    // Service accounts, New service account: the form below the list.
    tab.follow_in(LEFT_PANEL, "", "Service accounts", "/service-accounts")
        .await;
    tab.see_text("No service accounts yet.").await;
    tab.click("New service account").await;
    tab.wait_for(
        "the focus is in the service account's Name field",
        "document.activeElement === document.getElementById('service-account-name')",
    )
    .await;
    tab.fill("Name", "Deploy pipeline").await;
    assert_eq!(
        tab.options("Role").await,
        ["Read-Only", "Read-Write", "Admin"],
        "the roles a service account may have"
    );
    assert_eq!(
        tab.chosen("Role").await,
        "Read-Only",
        "service accounts default to Read-Only"
    );
    tab.choose("Role", "Read-Write").await;
    tab.screenshot("service-account-new.png").await;

    // Create service account: its own page, with an empty token table.
    let page = follow_to_service_account(&mut tab, "Create service account").await;
    tab.see_text("Service account “Deploy pipeline” created. Generate a token for it below.")
        .await;
    tab.see("Deploy pipeline").await;
    tab.see_text("No tokens yet.").await;
    tab.screenshot("service-account.png").await;
    assert_eq!(
        service_account_count(&app).await,
        1,
        "the account is stored"
    );

    // Generate new token: the dialog, then the token shown once.
    tab.click("Generate new token").await;
    tab.wait_for_modal("New token for Deploy pipeline").await;
    tab.fill("Token name", "GitHub Actions").await;
    tab.see("Scope").await;
    tab.see("Expiration").await;
    tab.check_accessibility("the service account's generate dialog")
        .await;
    tab.follow("Generate", &format!("{page}/tokens/created"))
        .await;
    tab.wait_for_modal("New token “GitHub Actions” for Deploy pipeline")
        .await;
    let secret = shown_secret(&mut tab, "Service account token").await;
    tab.see("Copy").await;
    tab.see("Make sure you copy the generated token. You won't be able to see it again.")
        .await;
    tab.screenshot("service-account-token.png").await;
    tab.click("Copy").await;
    tab.see_text("Copied to the clipboard.").await;
    assert_eq!(
        tab.clipboard().await.as_deref(),
        Ok(secret.as_str()),
        "the clipboard holds the token"
    );
    let me = helpers::api(
        &app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&helpers::bearer(&secret)),
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["kind"], json!("service_account"), "{}", me.body);
    assert_eq!(me.json()["role"], json!("read-write"), "{}", me.body);
    let basic = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.address))
        .basic_auth(ADMIN, Some(&secret))
        .send()
        .await
        .expect("API request");
    assert_eq!(
        basic.status(),
        StatusCode::UNAUTHORIZED,
        "a service account's token works with Bearer only"
    );
    tab.follow("Close", &page).await;
    tab.wait_for_no_modal().await;
    tab.see("GitHub Actions").await;

    // Delete asks first; Cancel keeps the token, Yes, delete removes it.
    tab.click_in("#tokens-table tr", "GitHub Actions", "Delete")
        .await;
    tab.wait_for_modal("Delete token?").await;
    tab.see_text("“GitHub Actions” will stop working at once.")
        .await;
    tab.check_accessibility("the service account's delete confirmation")
        .await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    assert_eq!(token_count(&app).await, 1, "Cancel keeps the token");
    tab.click_in("#tokens-table tr", "GitHub Actions", "Delete")
        .await;
    tab.wait_for_modal("Delete token?").await;
    tab.follow("Yes, delete", &page).await;
    tab.see_text("Token “GitHub Actions” deleted. It no longer works.")
        .await;
    assert_eq!(token_count(&app).await, 0, "Yes, delete removes the token");
    assert_eq!(
        me_with_bearer(&app, &secret).await,
        StatusCode::UNAUTHORIZED
    );

    // Revoke all (top right), after its confirmation.
    let first = generate_service_token(&mut tab, "Deploy pipeline", "Staging").await;
    let second = generate_service_token(&mut tab, "Deploy pipeline", "Production").await;
    tab.see("Staging").await;
    tab.see("Production").await;
    tab.click_in("main", "", "Revoke all").await;
    tab.wait_for_modal("Revoke every token of Deploy pipeline?")
        .await;
    tab.see_text("2 tokens will stop working at once.").await;
    tab.see("Yes, revoke all").await;
    tab.screenshot("service-account-revoke-all.png").await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    assert_eq!(token_count(&app).await, 2, "Cancel keeps every token");
    tab.click_in("main", "", "Revoke all").await;
    tab.wait_for_modal("Revoke every token of Deploy pipeline?")
        .await;
    tab.follow("Yes, revoke all", &page).await;
    tab.see_text("2 tokens revoked. They no longer work.").await;
    tab.see_text("No tokens yet.").await;
    assert_eq!(token_count(&app).await, 0);
    for token in [&first, &second] {
        assert_eq!(
            me_with_bearer(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "a revoked token stops working"
        );
    }

    // Its tokens are among the Workspace tokens, marked as a service's.
    let last = generate_service_token(&mut tab, "Deploy pipeline", "Nightly job").await;
    tab.follow_in(LEFT_PANEL, "", "Workspace tokens", "/workspace-tokens")
        .await;
    tab.see("Nightly job").await;
    tab.see("Service account").await;

    // Delete service account, after its confirmation.
    tab.follow_in(LEFT_PANEL, "", "Service accounts", "/service-accounts")
        .await;
    follow_to_service_account(&mut tab, "Deploy pipeline").await;
    tab.click("Delete service account").await;
    tab.wait_for_modal("Delete the service account Deploy pipeline?")
        .await;
    tab.see_text("Its 1 token will stop working at once.").await;
    tab.see("Yes, delete service account").await;
    tab.screenshot("delete-service-account.png").await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    assert_eq!(service_account_count(&app).await, 1, "Cancel keeps it");
    assert_eq!(me_with_bearer(&app, &last).await, StatusCode::OK);
    tab.click("Delete service account").await;
    tab.wait_for_modal("Delete the service account Deploy pipeline?")
        .await;
    tab.follow("Yes, delete service account", "/service-accounts")
        .await;
    tab.see_text("Service account “Deploy pipeline” deleted; 1 token(s) stopped working.")
        .await;
    tab.see_text("No service accounts yet.").await;
    assert_eq!(service_account_count(&app).await, 0);
    assert_eq!(
        me_with_bearer(&app, &last).await,
        StatusCode::UNAUTHORIZED,
        "the deleted account's token stops working"
    );
    tab.assert_no_problems();

    assert_walk_follows_chapter(
        &tab,
        SERVICE_ACCOUNTS_CHAPTER,
        &[
            "Service accounts",
            "New service account",
            "Create service account",
            "Generate new token",
            "Revoke all",
            "Delete service account",
            "Yes, delete service account",
        ],
    );

    chromium.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_follows_the_token_policy_chapter_and_sees_every_label_it_names() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    // Tokens from before the policy, with the usual 90 days.
    let (_, ci) = app.token_for(WRITER, "CI pipeline", "read-write").await;
    let (_, backup) = app.token_for(ADMIN, "Nightly backup", "read-write").await;
    let mut tab = chromium.tab(&app).await;
    sign_in(&mut tab, ADMIN).await;

    // Workspace tokens, its Token policy section.
    tab.follow_in(LEFT_PANEL, "", "Workspace tokens", "/workspace-tokens")
        .await;
    tab.see("Token policy").await;
    tab.see_text("Now: no restriction.").await;
    assert_eq!(
        tab.options("Maximum lifetime").await,
        ["No maximum", "7 days", "30 days", "90 days", "1 year"]
    );
    assert_eq!(tab.chosen("Maximum lifetime").await, "No maximum");
    tab.choose("Maximum lifetime", "30 days").await;
    tab.tick("Require an expiration date").await;
    tab.follow("Save policy", "/workspace-tokens").await;
    tab.see_text("Token policy saved: maximum lifetime 30 days. 2 existing token(s) are outside it and keep working until you revoke them.")
        .await;
    tab.see_text("Now: maximum lifetime 30 days.").await;
    tab.see("2 tokens are outside the policy").await;
    tab.eval("document.getElementById('token-policy').scrollIntoView({block: 'start', behavior: 'instant'})")
        .await;
    tab.screenshot("token-policy.png").await;

    // The generate dialog offers only what the policy allows.
    open_tokens_tab(&mut tab).await;
    tab.click("Generate new token").await;
    tab.wait_for_modal("New Personal Access Token").await;
    assert_eq!(
        tab.options("Expiration").await,
        ["7 days", "30 days"],
        "only the expiries the policy allows"
    );
    assert_eq!(
        tab.chosen("Expiration").await,
        "30 days",
        "the longest allowed is chosen"
    );
    tab.see_text("Default's token policy: tokens expire within 30 days at most.")
        .await;
    tab.fill("Token name", "Release script").await;
    tab.screenshot("policy-generate-dialog.png").await;
    tab.follow("Generate", "/profile/tokens/created").await;
    let release = shown_token(&mut tab).await;
    tab.follow("Close", "/profile/tokens").await;

    // The tokens outside the policy, revoked at once after the dialog.
    tab.follow_in(LEFT_PANEL, "", "Workspace tokens", "/workspace-tokens")
        .await;
    let outside = tab
        .eval("document.getElementById('outside-policy-tokens').innerText")
        .await;
    let outside = outside.as_str().unwrap_or_default();
    assert!(
        outside.contains("CI pipeline")
            && outside.contains("Nightly backup")
            && !outside.contains("Release script"),
        "the tokens from before the policy are listed, the new one is not: {outside}"
    );
    tab.click("Revoke tokens outside the policy").await;
    tab.wait_for_modal("Revoke the tokens outside the policy?")
        .await;
    tab.see_text("2 tokens will stop working at once.").await;
    tab.see("Yes, revoke them").await;
    tab.screenshot("revoke-outside-policy.png").await;
    tab.click("Cancel").await;
    tab.wait_for_no_modal().await;
    assert_eq!(token_count(&app).await, 3, "Cancel keeps every token");
    assert_eq!(me_with_bearer(&app, &ci).await, StatusCode::OK);
    tab.click("Revoke tokens outside the policy").await;
    tab.wait_for_modal("Revoke the tokens outside the policy?")
        .await;
    tab.follow("Yes, revoke them", "/workspace-tokens").await;
    tab.see_text("2 token(s) outside the token policy revoked. They no longer work.")
        .await;
    assert_eq!(token_count(&app).await, 1);
    for token in [&ci, &backup] {
        assert_eq!(
            me_with_bearer(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "a token outside the policy is revoked"
        );
    }
    assert_eq!(
        me_with_bearer(&app, &release).await,
        StatusCode::OK,
        "the token within the policy goes on working"
    );
    assert_eq!(
        tab.eval("document.getElementById('outside-policy') === null")
            .await,
        json!(true),
        "no token is outside the policy any more"
    );
    tab.assert_no_problems();

    assert_walk_follows_chapter(
        &tab,
        POLICY_CHAPTER,
        &[
            "Workspace tokens",
            "Token policy",
            "Maximum lifetime",
            "Require an expiration date",
            "Save policy",
            "Revoke tokens outside the policy",
            "Yes, revoke them",
        ],
    );

    chromium.close().await;
    app.stop().await;
}

/// Generates a token for the service account whose page (`account`, at
/// `page`) is open, with the keyboard alone, and answers the secret shown
/// once.
async fn generate_service_token_with_the_keyboard(
    tab: &mut Tab,
    page: &str,
    account: &str,
    name: &str,
) -> String {
    tab.tab_to("Generate new token", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal(&format!("New token for {account}"))
        .await;
    tab.assert_focus_on("#token-name", "the dialog opens on the Token name")
        .await;
    tab.type_text(name).await;
    tab.enter_to(&format!("{page}/tokens/created")).await;
    tab.wait_for_modal(&format!("New token “{name}” for {account}"))
        .await;
    let secret = shown_secret(tab, "Service account token").await;
    tab.tab_to("Close", false).await;
    tab.enter_to(page).await;
    secret
}

/// The Service accounts chapter with the keyboard alone: the left panel,
/// New service account (the role picked by typing into the list), Generate
/// new token (Escape closes its dialog, Enter sends it), the token shown once
/// (Copy, Close), a token deleted (Escape first), Revoke all, the account
/// opened from the list and deleted (Escape first). Every stop of the focus
/// can be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_accounts_chapter_works_with_the_keyboard_alone() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    let mut tab = chromium.tab(&app).await;
    sign_in_with_the_keyboard(&mut tab, ADMIN).await;

    // Service accounts; New service account puts the focus in its Name.
    tab.tab_to("Service accounts", false).await;
    tab.enter_to("/service-accounts").await;
    tab.see_text("No service accounts yet.").await;
    tab.tab_to("New service account", false).await;
    tab.key("Enter", false).await;
    tab.wait_for(
        "the focus is in the service account's Name field",
        "document.activeElement === document.getElementById('service-account-name')",
    )
    .await;
    tab.assert_focus_on(
        "#service-account-name",
        "New service account leads to the Name field",
    )
    .await;
    tab.type_text("Deploy pipeline").await;
    tab.tab_to("#service-account-role", false).await;
    tab.type_text("Read-W").await;
    assert_eq!(tab.chosen("Role").await, "Read-Write");
    tab.tab_to("Create service account", false).await;
    tab.mark_page().await;
    tab.key("Enter", false).await;
    let page = wait_for_service_account_page(&tab).await;
    tab.see_text("Service account “Deploy pipeline” created. Generate a token for it below.")
        .await;
    tab.see_text("with the Read-Write role").await;
    assert_eq!(service_account_count(&app).await, 1);

    // Generate new token: Escape closes the dialog and gives the focus back
    // to its button; Enter in the Token name sends it.
    tab.tab_to("Generate new token", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("New token for Deploy pipeline").await;
    tab.assert_focus_on("#token-name", "the dialog opens on the Token name")
        .await;
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    tab.assert_focus_on("Generate new token", "the focus is back on its button")
        .await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("New token for Deploy pipeline").await;
    tab.type_text("GitHub Actions").await;
    tab.enter_to(&format!("{page}/tokens/created")).await;
    tab.wait_for_modal("New token “GitHub Actions” for Deploy pipeline")
        .await;
    let secret = shown_secret(&mut tab, "Service account token").await;

    // The token shown once: Copy, then Close.
    tab.tab_to("Copy", false).await;
    tab.key("Enter", false).await;
    tab.see_text("Copied to the clipboard.").await;
    assert_eq!(
        tab.clipboard().await.as_deref(),
        Ok(secret.as_str()),
        "the clipboard holds the token"
    );
    tab.tab_to("Close", false).await;
    tab.enter_to(&page).await;
    assert_eq!(token_count(&app).await, 1);
    assert_eq!(me_with_bearer(&app, &secret).await, StatusCode::OK);

    // Delete: the dialog opens on Cancel; Escape keeps the token and gives
    // the focus back to the row's Delete; then Yes, delete.
    tab.tab_to("Delete", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("Delete token?").await;
    tab.assert_focus_on("Cancel", "the dialog opens on Cancel")
        .await;
    tab.see_text("“GitHub Actions” will stop working at once.")
        .await;
    tab.tab_to("Yes, delete", false).await;
    tab.tab_to("Cancel", true).await;
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    tab.assert_focus_on("Delete", "the focus is back on the row's Delete")
        .await;
    assert_eq!(token_count(&app).await, 1, "Escape deletes nothing");
    tab.key("Enter", false).await;
    tab.wait_for_modal("Delete token?").await;
    tab.tab_to("Yes, delete", false).await;
    tab.enter_to(&page).await;
    tab.see_text("Token “GitHub Actions” deleted. It no longer works.")
        .await;
    assert_eq!(token_count(&app).await, 0);
    assert_eq!(
        me_with_bearer(&app, &secret).await,
        StatusCode::UNAUTHORIZED
    );

    // Revoke all, confirmed.
    let staging =
        generate_service_token_with_the_keyboard(&mut tab, &page, "Deploy pipeline", "Staging")
            .await;
    tab.tab_to("Revoke all", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("Revoke every token of Deploy pipeline?")
        .await;
    tab.assert_focus_on("Cancel", "the dialog opens on Cancel")
        .await;
    tab.see_text("1 token will stop working at once.").await;
    tab.tab_to("Yes, revoke all", false).await;
    tab.enter_to(&page).await;
    tab.see_text("1 token revoked. It no longer works.").await;
    assert_eq!(token_count(&app).await, 0);
    assert_eq!(
        me_with_bearer(&app, &staging).await,
        StatusCode::UNAUTHORIZED
    );

    // The account opened from the list, then deleted: Escape keeps it.
    let nightly =
        generate_service_token_with_the_keyboard(&mut tab, &page, "Deploy pipeline", "Nightly job")
            .await;
    tab.tab_to("Service accounts", false).await;
    tab.enter_to("/service-accounts").await;
    tab.tab_to("Deploy pipeline", false).await;
    tab.mark_page().await;
    tab.key("Enter", false).await;
    assert_eq!(wait_for_service_account_page(&tab).await, page);
    tab.tab_to("Delete service account", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("Delete the service account Deploy pipeline?")
        .await;
    tab.assert_focus_on("Cancel", "the dialog opens on Cancel")
        .await;
    tab.see_text("Its 1 token will stop working at once.").await;
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    tab.assert_focus_on(
        "Delete service account",
        "the focus is back on Delete service account",
    )
    .await;
    assert_eq!(service_account_count(&app).await, 1, "Escape keeps it");
    assert_eq!(me_with_bearer(&app, &nightly).await, StatusCode::OK);
    tab.key("Enter", false).await;
    tab.wait_for_modal("Delete the service account Deploy pipeline?")
        .await;
    tab.tab_to("Yes, delete service account", false).await;
    tab.enter_to("/service-accounts").await;
    tab.see_text("Service account “Deploy pipeline” deleted; 1 token(s) stopped working.")
        .await;
    assert_eq!(service_account_count(&app).await, 0);
    assert_eq!(
        me_with_bearer(&app, &nightly).await,
        StatusCode::UNAUTHORIZED
    );
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}

/// Whether the checkbox with the id `id` is ticked.
async fn is_ticked(tab: &Tab, id: &str) -> bool {
    tab.eval(&format!("document.getElementById({}).checked", json!(id)))
        .await
        == json!(true)
}

/// The Token policy chapter with the keyboard alone: on Workspace tokens,
/// Space ticks Require an expiration date, a Maximum lifetime is picked by
/// typing, each saved with Enter; the generate dialog then offers only the
/// allowed expiries (one picked by typing); the tokens outside the policy
/// are revoked (Escape first). Every stop of the focus can be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_policy_chapter_works_with_the_keyboard_alone() {
    let chromium = Chromium::launch().await;
    let mut app = helpers::spawn_app(Backend::Sqlite).await;
    // Tokens from before the policy, with the usual 90 days.
    let (_, ci) = app.token_for(WRITER, "CI pipeline", "read-write").await;
    let (_, backup) = app.token_for(ADMIN, "Nightly backup", "read-write").await;
    let mut tab = chromium.tab(&app).await;
    sign_in_with_the_keyboard(&mut tab, ADMIN).await;

    // Require an expiration date: Space ticks and unticks the checkbox.
    tab.tab_to("Workspace tokens", false).await;
    tab.enter_to("/workspace-tokens").await;
    tab.see_text("Now: no restriction.").await;
    tab.tab_to("#policy-require-expiry", false).await;
    assert!(!is_ticked(&tab, "policy-require-expiry").await);
    tab.key("Space", false).await;
    assert!(
        is_ticked(&tab, "policy-require-expiry").await,
        "Space ticks the checkbox"
    );
    tab.key("Space", false).await;
    assert!(
        !is_ticked(&tab, "policy-require-expiry").await,
        "Space unticks it again"
    );
    tab.key("Space", false).await;
    tab.tab_to("Save policy", false).await;
    tab.enter_to("/workspace-tokens").await;
    tab.see_text("Token policy saved: expiration date required, no maximum lifetime.")
        .await;
    tab.see_text("Now: expiration date required, no maximum lifetime.")
        .await;
    assert!(is_ticked(&tab, "policy-require-expiry").await);

    // Maximum lifetime: typing picks 30 days in the focused list.
    tab.tab_to("#policy-max-lifetime", false).await;
    tab.type_text("30").await;
    assert_eq!(tab.chosen("Maximum lifetime").await, "30 days");
    tab.tab_to("Save policy", false).await;
    tab.enter_to("/workspace-tokens").await;
    tab.see_text("Token policy saved: maximum lifetime 30 days. 2 existing token(s) are outside it and keep working until you revoke them.")
        .await;
    tab.see_text("Now: maximum lifetime 30 days.").await;
    tab.see("2 tokens are outside the policy").await;

    // The generate dialog offers only what the policy allows.
    tab.tab_to("Profile", false).await;
    tab.enter_to("/profile").await;
    tab.tab_to("Personal Access Tokens", false).await;
    tab.enter_to("/profile/tokens").await;
    tab.tab_to("Generate new token", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("New Personal Access Token").await;
    assert_eq!(
        tab.options("Expiration").await,
        ["7 days", "30 days"],
        "only the expiries the policy allows"
    );
    tab.see_text("Default's token policy: tokens expire within 30 days at most.")
        .await;
    tab.type_text("Release script").await;
    tab.tab_to("#token-expiry", false).await;
    tab.type_text("7").await;
    assert_eq!(tab.chosen("Expiration").await, "7 days");
    tab.tab_to("Generate", false).await;
    tab.enter_to("/profile/tokens/created").await;
    let release = shown_token(&mut tab).await;
    tab.tab_to("Close", false).await;
    tab.enter_to("/profile/tokens").await;
    let lifetime: i64 = sqlx::query_scalar(
        "SELECT expires_at - created_at FROM personal_access_tokens WHERE name = 'Release script'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("the new token's lifetime");
    assert_eq!(lifetime, 7 * 24 * 60 * 60, "the token expires in 7 days");

    // The tokens outside the policy: the dialog opens on Cancel, Escape
    // keeps them and gives the focus back; then Yes, revoke them.
    tab.tab_to("Workspace tokens", false).await;
    tab.enter_to("/workspace-tokens").await;
    tab.tab_to("Revoke tokens outside the policy", false).await;
    tab.key("Enter", false).await;
    tab.wait_for_modal("Revoke the tokens outside the policy?")
        .await;
    tab.assert_focus_on("Cancel", "the dialog opens on Cancel")
        .await;
    tab.see_text("2 tokens will stop working at once.").await;
    tab.key("Escape", false).await;
    tab.wait_for_no_modal().await;
    tab.assert_focus_on(
        "Revoke tokens outside the policy",
        "the focus is back on its button",
    )
    .await;
    assert_eq!(token_count(&app).await, 3, "Escape revokes nothing");
    tab.key("Enter", false).await;
    tab.wait_for_modal("Revoke the tokens outside the policy?")
        .await;
    tab.tab_to("Yes, revoke them", false).await;
    tab.enter_to("/workspace-tokens").await;
    tab.see_text("2 token(s) outside the token policy revoked. They no longer work.")
        .await;
    for token in [&ci, &backup] {
        assert_eq!(
            me_with_bearer(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "a token outside the policy is revoked"
        );
    }
    assert_eq!(
        me_with_bearer(&app, &release).await,
        StatusCode::OK,
        "the token within the policy goes on working"
    );
    tab.assert_no_problems();

    chromium.close().await;
    app.stop().await;
}
