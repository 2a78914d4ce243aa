"""Finding 12: a crafted dashboard link ran script when the user clicked a button. Real headless
Chromium against the real stack."""
import time
from urllib.parse import quote

from selenium.webdriver.common.by import By

from gantry.auth import issue
from helpers import wait_build

PAYLOAD = "');window.__pwned=(window.__pwned||0)+1;('"


def crafted(name: str) -> str:
    """A name the browser's URL parser turns back into `name` (the `/..` drops the rest), so the
    API answers as usual while the page pastes the payload into its markup."""
    return quote(f"zz{PAYLOAD}/../{name}", safe="")


def click_every_button(browser):
    """What a user might click: every enabled button on the page (the page re-renders itself
    every 1.5 s, so the clicks are dispatched in one go from the page's side)."""
    browser.execute_script("document.querySelectorAll('#view button:not([disabled])').forEach((b) => b.click())")
    time.sleep(1)


def test_a_crafted_link_runs_no_script(stack, api, new_project, browser):
    project, sha, _ = new_project("sleep 30; mkdir -p dist")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    token = issue(stack.config().jwt_secret(), "victim", [project])
    ui = f"{stack.config().api_url}/ui"
    browser.get(f"{ui}#token={token}")
    attacks = [f"#/p/{crafted(project)}",                   # Build and Roll back buttons
               f"#/p/{project}/b/{crafted(b)}"]                # Cancel and Deploy buttons
    for fragment in attacks:
        browser.get(ui + fragment)
        time.sleep(2)
        click_every_button(browser)
        assert browser.execute_script("return window.__pwned || 0") == 0, fragment
        assert "not a" in browser.find_element(By.CSS_SELECTOR, "[data-testid=error]").text, fragment
    assert browser.find_elements(By.CSS_SELECTOR, "[onclick]") == []
    api.patch(f"/projects/{project}/builds/{b}?op=CANCEL")
    wait_build(api, project, b)
