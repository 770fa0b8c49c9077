//! The web app in a real browser: headless Chromium driven over WebDriver (chromedriver), against
//! the server on port 0 with the scripted LLM. `.ci/run` installs Debian's `chromium` and
//! `chromium-driver` and sets `SQLMATIC_REQUIRE_BROWSER=1`, which turns a missing browser into a
//! failure; elsewhere these tests say they were skipped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};

use crate::helpers::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ending the session quits the browser; killing chromedriver alone would orphan it.
        // Drop cannot await, so this is a plain blocking HTTP request.
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn available() -> bool {
    let ok = Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if !ok {
        assert!(
            std::env::var("SQLMATIC_REQUIRE_BROWSER").is_err(),
            "chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: browser test needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)"
        );
    }
    ok
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http =
            sqlmatic_agent::http_client(Duration::from_secs(5), Some(Duration::from_secs(60)))
                .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1400,900", format!("--user-data-dir={}", profile.path().display())]
        }}}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Self { process, http, base, session, _profile: profile }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn js_async(&self, script: &str) -> Value {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1]; (async () => {{ {script} }})().then(done, (e) => done('ERR ' + e));"
        );
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": wrapped, "args": []})),
        )
        .await
    }

    /// Waits until `expr` (JavaScript) is truthy; returns its value.
    async fn until(&self, expr: &str, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(&format!("return ({expr});")).await;
            if v.as_bool() != Some(false) && !v.is_null() && v != json!(0) && v != json!("") {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Saves a screenshot under target/screenshots (copied to docs/ for the README).
    async fn screenshot(&self, name: &str) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

const ENTER: &str = "\u{E007}";

crate::on_both_engines!(ask_a_question_and_see_the_answer_sql_table_chart_and_live_schema);

async fn ask_a_question_and_see_the_answer_sql_table_chart_and_live_schema(engine: Engine) {
    if !available() {
        return;
    }
    let sql = "SELECT country, count(*) AS customers FROM customers GROUP BY country ORDER BY customers DESC LIMIT 5";
    let llm = ScriptedLlm::by_round(
        vec![
            Step::Reply(Reply::tool("q1", "execute_query", json!({"sql": sql}))),
            Step::Reply(Reply::tool("c1", "show_chart", json!({"kind": "bar", "x": "country", "y": "customers", "title": "Customers by country"}))),
            Step::Reply(Reply::text("Germany has the most customers (135), then France (134) and Spain (126).")),
        ],
        Duration::from_millis(20),
    )
    .await;
    let app = engine
        .spawn("browser_ask", |c| {
            use_llm(c, &llm);
            c.database.schema_poll_interval_ms = 200;
        })
        .await;
    let browser = Driver::start().await;
    browser.goto(&app.url("/")).await;
    browser.until("document.body.dataset.ready === 'true'", "the app to start").await;
    browser.until("document.querySelectorAll('.table-card').length >= 10", "the schema tree").await;
    // SQLite counts schema versions; PostgreSQL's is a catalogue fingerprint, shown as one
    let label = if engine == Engine::Sqlite { "schema v" } else { "schema #" };
    let note = browser.js("return document.querySelector('#structure .note').textContent").await;
    assert!(note.as_str().unwrap().contains(label), "{note}");
    assert_eq!(
        browser.js("return document.querySelector('#connection').textContent").await,
        "live"
    );
    browser.screenshot(&format!("structure-{engine:?}")).await;

    browser
        .type_into("#question", &format!("Which countries have the most customers?{ENTER}"))
        .await;
    let answer = browser.until("[...document.querySelectorAll('.msg.assistant .answer')].map(a => a.textContent).find(t => t.includes('Spain (126).'))", "the whole streamed answer").await;
    assert!(answer.as_str().unwrap().starts_with("Germany has the most customers"), "{answer}");
    browser.until("document.querySelector('#stop').hidden", "the turn to end").await;
    assert!(
        browser
            .js("return document.querySelector('pre.sql').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("GROUP BY country")
    );
    browser
        .until(
            "document.querySelectorAll('.chart svg rect').length >= 5",
            "the chart the agent asked for",
        )
        .await;
    assert_eq!(
        browser.js("return document.querySelector('.chart svg').getAttribute('aria-label')").await,
        "Customers by country"
    );
    assert!(
        browser
            .js("return document.querySelector('#thread-list li button').textContent")
            .await
            .as_str()
            .unwrap()
            .starts_with("Which countries")
    );
    browser.screenshot("chat-chart").await;

    // table view: five rows, sortable
    browser.click("button.toggle-chart").await;
    assert_eq!(
        browser.js("return document.querySelectorAll('table.result tbody tr').length").await,
        5
    );
    browser.click("table.result th").await;
    assert_eq!(
        browser
            .js("return document.querySelector('table.result th').getAttribute('aria-sort')")
            .await,
        "ascending"
    );
    let firsts = browser.js("return [...document.querySelectorAll('table.result tbody tr td:first-child')].map(td => td.textContent)").await;
    let firsts: Vec<String> = serde_json::from_value(firsts).unwrap();
    let mut sorted = firsts.clone();
    sorted.sort();
    assert_eq!(firsts, sorted, "sorted ascending by country");

    // CSV download: the button's blob is the query's CSV
    // (the page's CSP rightly forbids fetching blob: URLs, so capture the Blob itself)
    browser
        .js("window.__downloads = []; const make = URL.createObjectURL; URL.createObjectURL = (b) => { window.__downloads.push(b); return make(b); }; \
             HTMLAnchorElement.prototype.click = function () { window.__name = this.download; };")
        .await;
    browser.click("button.csv").await;
    browser.until("window.__downloads.length", "the CSV download").await;
    assert_eq!(browser.js("return window.__name").await, "query.csv");
    let csv = browser.js_async("return await window.__downloads[0].text();").await;
    assert!(csv.as_str().unwrap().starts_with("country,customers\r\nGermany,135"), "{csv}");

    // someone changes the schema: the structure panel redraws without a reload
    browser.js("window.__same_page = true;").await;
    engine.ddl(
        &app,
        "browser_ask",
        "CREATE TABLE browser_added(id INTEGER PRIMARY KEY, note TEXT)",
    );
    browser
        .until(
            "document.querySelector('.table-card[data-table=\"browser_added\"]')",
            "the new table in the structure panel",
        )
        .await;
    assert_eq!(browser.js("return window.__same_page === true").await, true, "no reload happened");
    // it came as a patch: the tables it did not name are still shown
    assert_eq!(
        browser
            .js("return !!document.querySelector('.table-card[data-table=\"customers\"]')")
            .await,
        true
    );

    // dark theme
    browser.click("#theme-button").await;
    browser.screenshot("dark").await;
}

/// The model's Markdown renders (headings, emphasis, tables, lists, code) and the HTML it
/// writes stays text: no script runs, no image loads, no `javascript:` link survives.
#[actix_web::test]
async fn answers_render_as_markdown_and_the_models_html_stays_text() {
    if !available() {
        return;
    }
    let answer = "## Top countries\n\n**Germany** leads with `135` customers:\n\n\
                  | country | customers |\n|---|---|\n| Germany | 135 |\n| France | 134 |\n\n\
                  - first\n- second\n\n```sql\nSELECT country FROM customers\n```\n\n\
                  <script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">\n\n\
                  [click](javascript:window.__pwned=3) and [docs](https://example.com/docs)";
    let llm =
        ScriptedLlm::by_round(vec![Step::Reply(Reply::text(answer))], Duration::from_millis(5))
            .await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let browser = Driver::start().await;
    browser.goto(&app.url("/")).await;
    browser.until("document.body.dataset.ready === 'true'", "the app to start").await;
    // an empty thread offers the context's onboarding questions; picking one asks it
    browser
        .until("document.querySelectorAll('.suggestion').length >= 3", "the suggested questions")
        .await;
    let picked = browser.js("return document.querySelector('.suggestion').textContent").await;
    browser.click(".suggestion").await;
    browser.until("document.querySelector('#stop').hidden && document.querySelector('.msg.assistant .answer table')", "the rendered answer").await;
    assert_eq!(browser.js("return document.querySelector('.msg.user').textContent").await, picked);
    assert_eq!(browser.js("return document.querySelectorAll('.suggestion').length").await, 0);
    let q = |js: &str| {
        format!(
            "return (() => {{ const a = document.querySelector('.msg.assistant .answer'); return {js}; }})()"
        )
    };
    assert_eq!(browser.js(&q("a.querySelector('h2').textContent")).await, "Top countries");
    assert_eq!(browser.js(&q("a.querySelector('strong').textContent")).await, "Germany");
    assert_eq!(browser.js(&q("a.querySelectorAll('table tbody tr').length")).await, 2);
    assert_eq!(browser.js(&q("a.querySelectorAll('ul li').length")).await, 2);
    assert_eq!(
        browser.js(&q("a.querySelector('pre code').textContent.trim()")).await,
        "SELECT country FROM customers"
    );
    assert_eq!(
        browser.js(&q("a.querySelectorAll('script, img, iframe, [onerror]').length")).await,
        0
    );
    assert_eq!(
        browser.js(&q("a.textContent.includes('<script>window.__pwned = 1</script>')")).await,
        true,
        "the model's HTML shows as text"
    );
    assert_eq!(
        browser.js(&q("[...a.querySelectorAll('a')].map(l => l.getAttribute('href'))")).await,
        json!(["https://example.com/docs"])
    );
    assert_eq!(
        browser.js(&q("a.textContent.includes('click and docs')")).await,
        true,
        "a refused link stays as text"
    );
    assert_eq!(browser.js("return window.__pwned === undefined").await, true);
    browser.screenshot("markdown").await;
}

/// An answer that reused a verified query carries the "verified" badge, also when the thread
/// is opened again; thumbs rate an answer, an up on new SQL proposes a candidate, and an admin
/// verifies it in the "Verified queries" dialog.
#[actix_web::test]
async fn verified_answers_show_a_badge_and_thumbs_propose_candidates_to_verify() {
    if !available() {
        return;
    }
    let llm = ScriptedLlm::queue(vec![
        // the demo context's verified query, run as it is
        Step::Reply(Reply::tool(
            "q1",
            "execute_query",
            json!({"sql": "SELECT count(*) AS customers FROM customers"}),
        )),
        Step::Reply(Reply::text("We have **1200** customers.")),
        Step::Reply(Reply::tool(
            "q2",
            "execute_query",
            json!({"sql": "SELECT count(*) AS n FROM suppliers"}),
        )),
        Step::Reply(Reply::text("There are 8 suppliers.")),
    ])
    .await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let browser = Driver::start().await;
    browser.goto(&app.url("/")).await;
    browser.until("document.body.dataset.ready === 'true'", "the app to start").await;
    browser
        .until("[...document.querySelectorAll('.suggestion')].some(b => b.textContent === 'How many customers do we have?')", "the onboarding question")
        .await;
    browser
        .js("[...document.querySelectorAll('.suggestion')].find(b => b.textContent === 'How many customers do we have?').click()")
        .await;
    browser
        .until("document.querySelector('.msg.assistant .badge.verified')", "the verified badge")
        .await;
    assert_eq!(
        browser.js("return document.querySelector('.badge.verified').textContent").await,
        "✓ verified by demo-team"
    );
    assert_eq!(
        browser.js("return document.querySelector('.badge.verified').title.includes('How many customers do we have?')").await,
        true
    );
    browser.until("document.querySelector('#stop').hidden", "the turn to end").await;

    // a second answer with SQL nobody verified: no badge; a thumbs-up proposes it
    browser.type_into("#question", &format!("Count the suppliers{ENTER}")).await;
    browser
        .until(
            "document.querySelectorAll('.msg.assistant .answer-footer').length === 2",
            "the second answer",
        )
        .await;
    assert_eq!(browser.js("return document.querySelectorAll('.badge.verified').length").await, 1);
    browser.js("document.querySelectorAll('.thumb[aria-label=\"Good answer\"]')[1].click()").await;
    browser
        .until("document.querySelectorAll('.thumbs .note')[1].textContent.includes('proposed as a verified query')", "the candidate note")
        .await;
    assert_eq!(
        browser.js("return document.querySelectorAll('.thumb[aria-label=\"Good answer\"]')[1].getAttribute('aria-pressed')").await,
        "true"
    );
    browser.screenshot("verified").await;

    // the admin verifies it in the dialog
    browser.click("#verified-button").await;
    browser.until("document.querySelector('#verified .candidates .vq')", "the candidate").await;
    assert_eq!(
        browser
            .js("return document.querySelector('#verified .candidates .vq .question').textContent")
            .await,
        "Count the suppliers"
    );
    browser.click("#verified .candidates .vq button.primary").await;
    browser.until("document.querySelector('#verified .candidates .vq .note[role=status]').textContent.startsWith('Verified')", "the verification").await;
    let verified: Value =
        app.get("/api/verified-queries?status=verified").await.json().await.unwrap();
    assert!(
        verified
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["question"] == "Count the suppliers" && q["verified_by"] == "local"),
        "{verified}"
    );

    // opened again, the thread keeps the badge and the rating
    browser.goto(&app.url("/")).await;
    browser.until("document.body.dataset.ready === 'true' && document.querySelector('#thread-list button')", "the thread list").await;
    browser.click("#thread-list button").await;
    browser
        .until("document.querySelectorAll('.msg.assistant').length === 2", "the stored thread")
        .await;
    assert_eq!(
        browser
            .js("return document.querySelectorAll('.msg.assistant .badge.verified').length")
            .await,
        1
    );
    assert_eq!(
        browser.js("return document.querySelectorAll('.thumb[aria-label=\"Good answer\"]')[1].getAttribute('aria-pressed')").await,
        "true"
    );
    // and its queries' results as the live turn showed them
    assert_eq!(
        browser
            .js("return document.querySelector('.msg.assistant table.result td').textContent")
            .await,
        "1200"
    );
    assert_eq!(
        browser
            .js("return document.querySelector('.msg.assistant table.result th').textContent")
            .await,
        "customers"
    );
}

#[actix_web::test]
async fn stop_cancels_an_answer_and_shows_it_as_stopped() {
    if !available() {
        return;
    }
    let llm = ScriptedLlm::queue(vec![Step::StallAfter {
        events: 3,
        reply: Reply::text("Counting every order of every customer takes a while"),
    }])
    .await;
    // with use_llm's 1.5 s idle limit the answer could end as a time-out before the click,
    // hiding Stop
    let app = spawn_with(|c| use_stalling_llm(c, &llm)).await;
    let browser = Driver::start().await;
    browser.goto(&app.url("/")).await;
    browser.until("document.body.dataset.ready === 'true'", "the app to start").await;
    browser.type_into("#question", &format!("Count everything{ENTER}")).await;
    browser.until("document.querySelector('.msg.assistant .answer')?.textContent.startsWith('Counting every')", "the first words").await;
    assert_eq!(browser.js("return document.querySelector('#stop').hidden").await, false);
    browser.click("#stop").await;
    browser
        .until(
            "document.querySelector('.msg.assistant .status')?.textContent.includes('Stopped')",
            "the stopped status",
        )
        .await;
    assert_eq!(browser.js("return document.querySelector('#send').hidden").await, false);
}

#[actix_web::test]
async fn token_login_refuses_a_wrong_token_and_accepts_the_right_one() {
    if !available() {
        return;
    }
    let app = spawn_with(|c| c.api.auth.mode = sqlmatic_server::auth::AuthMode::Token).await;
    let token = app.core.users().add("carol", false, None).unwrap();
    let browser = Driver::start().await;
    browser.goto(&app.url("/")).await;
    browser.until("!document.querySelector('#login').hidden", "the sign-in form").await;
    browser.type_into("#token-input", "sqm_000000000000_wrong").await;
    browser.click("#login-form button[type=submit]").await;
    browser.until("!document.querySelector('#login-error').hidden", "the refusal").await;
    assert_eq!(
        browser.js("return document.querySelector('#login-error').textContent").await,
        "That token was refused."
    );
    assert_eq!(browser.js("return document.querySelector('#app').hidden").await, true);
    browser.screenshot("login").await;
    browser.js("document.querySelector('#token-input').value = ''").await;
    browser.type_into("#token-input", &token).await;
    browser.click("#login-form button[type=submit]").await;
    browser.until("document.body.dataset.ready === 'true'", "the app after sign-in").await;
    assert_eq!(
        browser.js("return document.querySelector('#connection').textContent").await,
        "live"
    );
    assert_eq!(
        browser.js("return document.querySelector('#metrics-button').hidden").await,
        true,
        "metrics are for admins"
    );
}

#[actix_web::test]
async fn a_broken_view_is_marked_in_the_structure_panel_and_the_rest_renders() {
    if !available() {
        return;
    }
    let (_torture, path) = sqlmatic_tools::test_support::torture_db();
    let app = spawn_with(|c| {
        c.database.targets =
            vec![serde_json::from_value(json!({"name": "real", "path": path})).unwrap()];
    })
    .await;
    let browser = Driver::start().await;
    browser.goto(&app.url("/")).await;
    browser.until("document.body.dataset.ready === 'true'", "the app to start").await;
    browser.until("document.querySelectorAll('.table-card').length >= 20", "the schema tree").await;
    let broken = browser
        .js("return [...document.querySelectorAll('.table-card.broken')].map(c => c.dataset.table)")
        .await;
    assert_eq!(broken, json!(["ghost_vt", "gone_view", "stale_view"]));
    let stale = browser
        .js("return document.querySelector('[data-table=\"stale_view\"]').textContent")
        .await;
    let stale = stale.as_str().unwrap();
    assert!(
        stale.contains("broken") && stale.contains("no such column: c.dropped_column"),
        "{stale}"
    );
    // the working objects render as usual
    let docs = browser
        .js("return document.querySelector('[data-table=\"docs\"] .kind').textContent")
        .await;
    assert_eq!(docs, "fts5 · 2 rows");
    let orders = browser
        .js("return document.querySelector('[data-table=\"orders\"] .kind').textContent")
        .await;
    assert_eq!(orders, "3 rows");
    let warning = browser.js("return document.querySelector('.note.warning').textContent").await;
    assert!(warning.as_str().unwrap().contains("app_locale"), "{warning}");
    browser.click("[data-table=\"stale_view\"] > summary").await;
    browser.screenshot("broken-view").await;
}
