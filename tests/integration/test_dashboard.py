"""The web dashboard in real headless Chromium (Debian's chromium and chromedriver, driven by
Selenium): load it with a token, see a build appear, deploy it from the page, watch it finish."""
import os
import re
import time
import uuid
from pathlib import Path

from helpers import make_repo
from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from gantry.auth import issue

ARTIFACTS = Path(os.environ.get("GANTRY_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


def click(wait, selector: str) -> None:
    """Click an element once it is clickable; the page re-renders its lists every few seconds,
    so an element found a moment ago may be replaced by the time it is clicked: look again."""
    def attempt(driver):
        try:
            element = EC.element_to_be_clickable((By.CSS_SELECTOR, selector))(driver)
            if element:
                element.click()
            return bool(element)
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
    wait.until(attempt)


def test_dashboard_shows_a_build_and_deploys_it(stack, api, browser, tmp_path):
    name = f"ui-{uuid.uuid4().hex[:8]}"
    repo, sha = make_repo(tmp_path / name, "mkdir -p dist && echo ui > dist/v")
    assert api.put(f"/projects/{name}", json={"repoURL": str(repo)}).status_code == 201
    token = issue(stack.config().jwt_secret(), "dana", [name])
    wait = WebDriverWait(browser, 90, poll_frequency=0.3, ignored_exceptions=(StaleElementReferenceException,))

    browser.get(f"{stack.config().api_url}/ui")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=token-input]").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=save-token]").click()
    click(wait, f"[data-testid=project-{name}]")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=builds]")))
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=build-row]") == []

    build_id = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]
    click(wait, f"[data-testid=build-{build_id}]")
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=build-status]"), "SUCCEEDED"))
    assert "running" in browser.find_element(By.CSS_SELECTOR, "[data-testid=log]").text
    assert "REPLICATED" in browser.find_element(By.ID, "view").text

    click(wait, "[data-testid=deploy-button]")
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=deployment-status]"), "COMPLETED"))
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid^=dc-]")
    assert len(rows) == 2
    for row in rows:  # both real hosts of each datacenter (hosts lost by earlier tests stay listed)
        active, total = map(int, re.search(r"(\d+) / (\d+)", row.text).groups())
        lost = int(m.group(1)) if (m := re.search(r"(\d+) lost", row.text)) else 0
        assert active == 2 == total - lost, row.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"dashboard-{time.strftime('%Y%m%dT%H%M%S')}.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    deps = api.get(f"/projects/{name}/deployments").json()["deployments"]
    assert deps[0]["buildID"] == build_id and deps[0]["createdBy"] == "dana"
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=error]").text == ""


def test_dashboard_shows_and_sets_a_projects_build_settings(stack, api, browser, tmp_path, admin_token):
    name = f"ui-{uuid.uuid4().hex[:8]}"
    repo, _ = make_repo(tmp_path / name, "true")
    assert api.put(f"/projects/{name}", json={"repoURL": str(repo), "build": {"command": "make", "output": "out"},
                                              "egressAllow": ["pypi.org"]}).status_code == 201
    wait = WebDriverWait(browser, 60, poll_frequency=0.3, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"{stack.config().api_url}/ui#token={admin_token}")
    browser.get(f"{stack.config().api_url}/ui#/p/{name}")
    wait.until(EC.text_to_be_present_in_element_value((By.CSS_SELECTOR, "[data-testid=settings]"), '"pypi.org"'))
    box = browser.find_element(By.CSS_SELECTOR, "[data-testid=settings]")
    box.click()
    box.send_keys(" ")                 # an edit in progress...
    wait.until(EC.staleness_of(box))   # ...when the page re-renders under it
    assert browser.switch_to.active_element.get_attribute("data-testid") == "settings", "the edit lost its focus"

    def save(settings: str) -> None:
        def typed(driver):   # the page re-renders every 1.5 s: type again if the box was replaced meanwhile
            box = driver.find_element(By.CSS_SELECTOR, "[data-testid=settings]")
            box.clear()
            box.send_keys(settings)
            return driver.find_element(By.CSS_SELECTOR, "[data-testid=settings]").get_attribute("value") == settings
        wait.until(typed)
        click(wait, "[data-testid=settings-button]")

    save('{"build": {"command": "make", "output": "../etc"}}')
    wait.until(EC.text_to_be_present_in_element((By.ID, "error"), "422 invalid build settings"))
    assert api.get(f"/projects/{name}").json()["build"] == {"command": "make", "output": "out"}
    save('{"build": {"command": "make all", "output": "out", "cache": ["~/.ccache"]}, "egressAllow": []}')
    wait.until(lambda _: api.get(f"/projects/{name}").json()["build"].get("command") == "make all")
    assert api.get(f"/projects/{name}").json()["egressAllow"] == []
    wait.until(EC.text_to_be_present_in_element_value((By.CSS_SELECTOR, "[data-testid=settings]"), "~/.ccache"))
