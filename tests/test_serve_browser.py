"""The web page in a real browser (Debian's chromium + chromium-driver, driven by selenium) against
a live server on 127.0.0.1: pick a user, submit a profile and a plain-words request, add an item,
and find the result cards and their explanations in the DOM."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")

from serve_fixtures import served_copy  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium/chromedriver: apt-get install chromium chromium-driver"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_url(served_run_dir, tiny_lm, tmp_path):
    yield from serving(served_copy(served_run_dir, tmp_path / "run").app)


@pytest.fixture(params=[0, 1], ids=["frozen-lm", "tuned-lm"])
def live_l3ae_url(request, tiny_lm, tmp_path):
    """An l3ae run read by the frozen LM, or by the LM LoRA-tuned for an epoch on co-occurring items
    (its adapters in the checkpoint read the page's added item and plain-words request)."""
    from serve_fixtures import train_tiny_run

    run = train_tiny_run(tmp_path, tiny_lm, "l3ae", {"reg": 1.0, "text_weight": 1.0, "tune_epochs": request.param})
    client = served_copy(run, tmp_path / "copy")
    adapters = client.app.state.service.model.lm_adapter.tensors()
    assert bool(adapters) == bool(request.param)  # the tuned run serves the adapters it was read with
    yield from serving(client.app)


def serving(app):
    """The URL of `app` served by uvicorn on a free loopback port, until the generator closes."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start within 30 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def wait_for(driver, css, count=1, timeout=20):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, css)) >= count)
    return driver.find_elements(By.CSS_SELECTOR, css)


def test_page_in_a_real_browser(live_url, browser, request):
    from selenium.webdriver.common.by import By

    cards = user_1_cards(browser, live_url, "enhanced")
    assert len(cards[0].find_elements(By.CSS_SELECTOR, ".bar span")) == 5  # 3 profile + 2 item fields
    if request.config.getoption("--screenshots", default=None):
        browser.save_screenshot(str(request.config.getoption("--screenshots")) + "/serve-1280.png")

    profile_query_and_new_item(browser, note="serve an l3ae run")


def test_page_with_the_headline_model(live_l3ae_url, browser):
    """The same page over an l3ae run: reasons name liked films (no field bars), a profile, a request
    in plain words and an added item all work."""
    from selenium.webdriver.common.by import By

    cards = user_1_cards(browser, live_l3ae_url, "l3ae")
    assert not cards[0].find_elements(By.CSS_SELECTOR, ".bar span")
    profile_query_and_new_item(browser, note="")


def user_1_cards(browser, url: str, model: str) -> list:
    """Open the page, check the status line names `model`, ask for user 1 (a comedy fan): the cards,
    a comedy first, its reason naming liked films."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(url + "/")
    wait_for(browser, "#user-select option", 12)
    assert f"{model} model" in browser.find_element(By.ID, "status").text
    Select(browser.find_element(By.ID, "user-select")).select_by_value("1")
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "results-title").text == "For user 1")
    cards = wait_for(browser, ".card", 2)
    assert "Funny Film" in cards[0].find_element(By.TAG_NAME, "h3").text
    assert cards[0].find_element(By.CSS_SELECTOR, ".reason").text.startswith("Because you liked")
    return cards


def profile_query_and_new_item(browser, note: str):
    """A profile, a plain-words request and an added item, each answered with result cards; the
    added item's message shows the model's `note` on new items (empty: none)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fields = {e.get_attribute("name"): e for e in browser.find_elements(By.CSS_SELECTOR, "#profile-fields input")}
    assert set(fields) == {"gender", "age", "occupation"}
    for name, value in (("gender", "F"), ("age", "30"), ("occupation", "writer")):
        fields[name].send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#profile-form button").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "results-title").text == "For your profile")
    assert "users had it" in wait_for(browser, ".card .reason", 3)[0].text

    query = browser.find_element(By.ID, "query")
    query.clear()
    query.send_keys("Horror")
    browser.find_element(By.CSS_SELECTOR, "#query-form button").click()
    WebDriverWait(browser, 20).until(lambda d: "Horror" in d.find_element(By.ID, "results-title").text)
    titles = [c.find_element(By.TAG_NAME, "h3").text for c in wait_for(browser, ".card", 6)[:6]]
    assert all("Scary Film" in t for t in titles), titles

    browser.find_element(By.ID, "item-title").send_keys("Scary Film 13 (1999)")
    browser.find_element(By.ID, "item-genres").send_keys("Horror")
    add = browser.find_element(By.CSS_SELECTOR, "#item-form button")
    slow = "const f = window.fetch; window.fetch = (...a) => new Promise(r => setTimeout(() => r(f(...a)), 500));"
    browser.execute_script(slow)  # answers take 0.5 s, so the second click lands while the first runs
    add.click()
    add.click()  # a double click adds one item: the button is off while its request runs
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "results-title").text.startswith("Added"))
    assert any(c.get_attribute("data-item-id") == "13" for c in wait_for(browser, ".card", 1))
    health = browser.execute_async_script("fetch('/v1/health').then(r => r.json()).then(arguments[0])")
    assert health["new_items"] == 1, health
    message = browser.find_element(By.ID, "message").text
    assert note in message if note else message == ""


@pytest.fixture
def live_own_columns_url(tiny_lm, tmp_path):
    from test_own_files import train_own_columns_run

    yield from serving(served_copy(train_own_columns_run(tmp_path, tiny_lm), tmp_path / "copy").app)


def test_the_page_asks_an_added_item_for_the_run_s_own_columns(live_own_columns_url, browser):
    """Items described by name and category: the add form grows those two inputs, and the item is
    added through them (was refused: the page sent a title and genres only)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_own_columns_url + "/")
    wait_for(browser, "#item-fields input", 2)
    inputs = {e.get_attribute("name"): e for e in browser.find_elements(By.CSS_SELECTOR, "#item-fields input")}
    assert list(inputs) == ["name", "category"]
    assert not browser.find_element(By.ID, "item-genres").is_displayed()  # this run reads no genres
    browser.find_element(By.ID, "item-title").send_keys("Scary Film 13")
    inputs["name"].send_keys("Scary Film 13")
    inputs["category"].send_keys("Horror")
    browser.find_element(By.CSS_SELECTOR, "#item-form button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "results-title").text.startswith("Added"))
    assert browser.find_element(By.ID, "message").text == ""


@pytest.fixture
def live_ease_url(tmp_path):
    from gpt2rec.pipeline import RunConfig, train_run
    from serve_fixtures import write_data

    config = RunConfig.create(model="ease", model_config={"reg": 1.0}, data=write_data(tmp_path), split={"kind": "loo"})
    train_run(config, tmp_path / "run", verbose=False)
    yield from serving(served_copy(tmp_path / "run", tmp_path / "copy").app)


def test_a_run_without_an_lm_hides_what_it_cannot_do_and_takes_any_typed_user(live_ease_url, browser):
    """An EASE run showed the plain-words and add-item panels, which then failed; users beyond the
    listed ones could not be picked."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_ease_url + "/")
    wait_for(browser, "#user-select option", 12)
    assert not browser.find_element(By.ID, "query-form").is_displayed()
    assert not browser.find_element(By.ID, "item-form").is_displayed()
    assert "no plain-words requests" in browser.find_element(By.ID, "message").text
    assert not browser.find_element(By.ID, "user-explain").is_enabled()
    browser.find_element(By.ID, "user-id").send_keys("2")
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "results-title").text == "For user 2")
    assert wait_for(browser, ".card", 1)
