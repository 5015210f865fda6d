#!/usr/bin/env python3
"""The page of `fusednorm explain --html`, driven in headless Chromium as a person would.

It clicks Step, Reset, Run and Random, changes the rows, the feature dimension, the block size and epsilon, and
checks that every value the page shows (the float32 bits it keeps in data attributes, not the two decimals on
screen) equals what the CLI computes: `fusednorm explain --json` and `fusednorm run rmsnorm` on the page's own
matrix. The traffic calculator is checked against `fusednorm traffic --json`. The page is loaded from a file with
the browser's network switched off. Exits non-zero on the first failure.

Usage: explain_page_test.py FUSEDNORM [--screenshot PNG]
Needs: chromium and chromium-driver (Debian), selenium (PyPI).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select


def bits(value):
    """The float32 bits of a number, as the page and the CLI write them (0x3f1b422a)."""
    return "0x%08x" % struct.unpack(">I", struct.pack(">f", value))[0]


def write_npy(path, rows):
    """A float32 C-order .npy file of the matrix `rows`."""
    shape = (len(rows), len(rows[0]))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % shape
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        for row in rows:
            f.write(struct.pack("<%df" % len(row), *row))


def read_npy(path):
    """The float32 values of a .npy file `fusednorm run` wrote (format 1.0, '<f4'), flat."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    length = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + length].decode("latin1")
    assert "'<f4'" in header, header
    body = data[10 + length:]
    return list(struct.unpack("<%df" % (len(body) // 4), body))


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


class PageTest:
    def __init__(self, fusednorm, folder):
        self.fusednorm = fusednorm
        self.folder = folder
        self.checks = 0

    def cli(self, *arguments):
        result = subprocess.run([self.fusednorm, *arguments], capture_output=True, text=True)
        expect(result.returncode == 0, "fusednorm %s failed: %s" % (" ".join(arguments), result.stderr))
        return result.stdout

    def explain_json(self, *arguments):
        path = os.path.join(self.folder, "explain.json")
        self.cli("explain", *arguments, "--json", path)
        with open(path) as f:
            return json.load(f)["walkthrough"]

    # ---- reading the page -------------------------------------------------------------------------------
    def cells(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def matrix(self):
        rows = {}
        for cell in self.cells("#matrix td.x"):
            row, col = int(cell.get_attribute("data-row")), int(cell.get_attribute("data-col"))
            rows.setdefault(row, {})[col] = struct.unpack(">f", struct.pack(">I", int(cell.get_attribute("data-bits"), 16)))[0]
        return [[rows[r][c] for c in sorted(rows[r])] for r in sorted(rows)]

    def bits_of(self, selector):
        return [cell.get_attribute("data-bits") for cell in self.cells(selector)]

    def click(self, identifier):
        self.driver.find_element(By.ID, identifier).click()

    def select(self, identifier, value):
        Select(self.driver.find_element(By.ID, identifier)).select_by_visible_text(str(value))

    def set_epsilon(self, text):
        field = self.driver.find_element(By.ID, "epsilon")
        field.clear()
        field.send_keys(text)
        self.driver.find_element(By.ID, "rows").click()  # leave the field: its change event fires
        self.driver.find_element(By.TAG_NAME, "h1").click()

    def state(self):
        return self.driver.find_element(By.ID, "status").get_attribute("data-state")

    # ---- checks ------------------------------------------------------------------------------------------
    def compare_with_cli(self, block, epsilon_text, label):
        """Every statistic and output on the page against `fusednorm explain` and `fusednorm run` on its matrix."""
        matrix = self.matrix()
        x = os.path.join(self.folder, "x.npy")
        write_npy(x, matrix)
        walkthrough = self.explain_json("--x", x, "--block", str(block), "--epsilon", epsilon_text)
        expect(walkthrough["x"] == matrix, "%s: the CLI read another matrix" % label)
        for key, selector in [("sumOfSquares", "td.sumsq"), ("meanSquare", "td.meansq"), ("rms", "td.rms")]:
            expected = [bits(step[key]) for step in walkthrough["steps"]]
            expect(self.bits_of(selector) == expected, "%s: %s %s != CLI %s" % (label, key, self.bits_of(selector), expected))
        rstd = [step["rstdBits"] for step in walkthrough["steps"]]
        expect(self.bits_of("td.rstd") == rstd, "%s: rstd %s != CLI %s" % (label, self.bits_of("td.rstd"), rstd))
        outputs = [b for step in walkthrough["steps"] for b in step["outputBits"]]
        expect(self.bits_of("#output td.y") == outputs, "%s: y %s != CLI %s" % (label, self.bits_of("#output td.y"), outputs))
        last = walkthrough["steps"][-1]["blocks"]
        expect(self.bits_of("#blocks td.partial") == [bits(b["partial"]) for b in last], "%s: block partial sums differ" % label)
        expect(self.bits_of("#blocks td.running") == [bits(b["running"]) for b in last], "%s: running sums differ" % label)
        # And `fusednorm run`, the command users run.
        y, r = os.path.join(self.folder, "y.npy"), os.path.join(self.folder, "r.npy")
        self.cli("run", "rmsnorm", "--x", x, "--out", y, "--rstd", r, "--epsilon", epsilon_text, "--device", "cpu")
        expect([bits(v) for v in read_npy(r)] == rstd, "%s: rstd differs from fusednorm run" % label)
        expect([bits(v) for v in read_npy(y)] == outputs, "%s: y differs from fusednorm run" % label)
        self.checks += 1

    def run(self, screenshot):
        page = os.path.join(self.folder, "page.html")
        self.cli("explain", "--html", page, "--gpu", "h100")
        with open(page, encoding="utf-8") as f:
            text = f.read()
        for needle in ["http://", "https://", "<link", "src=", "@import", "url("]:
            expect(needle not in text, "the page refers to something outside itself: %r" % needle)
        default = self.explain_json()

        options = webdriver.ChromeOptions()
        for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1500"]:
            options.add_argument(argument)
        chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        if os.path.exists(chromium):
            options.binary_location = chromium
        driver_path = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            self.driver.execute_cdp_cmd("Network.enable", {})
            self.driver.execute_cdp_cmd(
                "Network.emulateNetworkConditions",
                {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
            self.driver.get("file://" + page)
            errors = self.driver.execute_script("return document.readyState")
            expect(errors == "complete", "the page did not load")

            # The reference matrix, nothing computed until a button is pressed.
            expect(self.matrix() == default["x"], "the page does not start from the CLI's matrix")
            expect(self.state() == "idle", "the page computed something before any click")
            expect(self.bits_of("td.rstd[data-bits]") == [], "rstd shown before any click")

            # Step: block 0 of row 0, highlighted, with the CLI's partial sum.
            visualizer = self.driver.find_element(By.ID, "visualizer")
            self.click("step")
            expect(visualizer.get_attribute("data-current-row") == "0", "Step: current row is not 0")
            expect(visualizer.get_attribute("data-current-block") == "0", "Step: current block is not 0")
            highlighted = [(c.get_attribute("data-row"), c.get_attribute("data-col")) for c in self.cells("#matrix td.current-block")]
            expect(highlighted == [("0", "0"), ("0", "1"), ("0", "2"), ("0", "3")], "Step: highlighted cells %s" % highlighted)
            expect(len(self.cells("#matrix tr.current-row")) == 1, "Step: the current row is not highlighted")
            expect(self.cells("#output td.current-block") == [], "Step: an output block is highlighted while reducing")
            row0 = default["steps"][0]
            expect(self.bits_of("#blocks td.partial") == [bits(row0["blocks"][0]["partial"])], "Step: block 0's sum")
            self.click("step")
            expect(visualizer.get_attribute("data-current-block") == "1", "Step 2: current block is not 1")
            expect(self.bits_of("#blocks td.running")[-1] == bits(row0["blocks"][1]["running"]), "Step 2: running sum")
            self.click("step")  # the row's statistics
            expect(self.bits_of("td.rstd[data-bits]") == [row0["rstdBits"]], "Step 3: rstd of row 0")
            expect(self.bits_of("td.sumsq[data-bits]") == [bits(21.75)], "Step 3: Σx² of row 0 is not 21.75")
            self.click("step")  # the first output block
            expect(self.bits_of("#output td.y[data-bits]") == row0["outputBits"][:4], "Step 4: y block 0 of row 0")
            written = [(c.get_attribute("data-row"), c.get_attribute("data-col")) for c in self.cells("#output td.current-block")]
            expect(written == [("0", "0"), ("0", "1"), ("0", "2"), ("0", "3")], "Step 4: highlighted output cells %s" % written)

            # Reset: nothing computed, nothing highlighted.
            self.click("reset")
            expect(self.state() == "idle", "Reset: state is not idle")
            expect(self.bits_of("#output td.y[data-bits]") == [] and self.bits_of("td.rstd[data-bits]") == [], "Reset left values")
            expect(self.cells("#matrix td.current-block") == [], "Reset left a highlighted block")

            # Run: every value of the reference matrix, and the data give 38.75 and 37.25 for rows 1 and 2.
            self.click("run")
            expect(self.state() == "done", "Run did not finish")
            expect(self.bits_of("td.sumsq") == [bits(21.75), bits(38.75), bits(37.25)], "Run: Σx² of the rows")
            check = self.driver.find_element(By.ID, "check")
            expect(check.get_attribute("data-match") == "yes", "Run: the page says it differs from FusedNorm: %s" % check.text)
            self.compare_with_cli(4, "1e-6", "reference matrix")

            # Block size 2: four blocks per row, the same statistics.
            self.select("block", 2)
            expect(self.state() == "idle", "changing the block size did not reset")
            self.click("run")
            expect(len(self.cells("#blocks td.partial")) == 4, "block size 2: not four blocks")
            self.compare_with_cli(2, "1e-6", "block size 2")

            # Random inputs of other shapes, block sizes and epsilons.
            for rows, columns, block, epsilon in [(4, 4, 4, "1e-5"), (2, 2, 1, "0.001"), (3, 8, 8, "1e-6"), (4, 8, 2, "1e-6")]:
                self.select("rows", rows)
                self.select("columns", columns)
                self.select("block", block)
                self.set_epsilon(epsilon)
                self.click("random")
                before = self.matrix()
                expect(len(before) == rows and len(before[0]) == columns, "Random: shape %dx%d" % (len(before), len(before[0])))
                self.click("random")
                expect(self.state() == "idle", "Random computed something")
                self.click("step")
                self.click("run")
                self.compare_with_cli(block, epsilon, "random %dx%d block %d epsilon %s" % (rows, columns, block, epsilon))

            # The traffic calculator against `fusednorm traffic`.
            for rows, columns, dtype, op, residual in [(8192, 4096, "bfloat16", "rmsnorm", False), (1000, 5120, "float32", "layernorm", True)]:
                for identifier, value in [("traffic-rows", rows), ("traffic-cols", columns)]:
                    field = self.driver.find_element(By.ID, identifier)
                    field.clear()
                    field.send_keys(str(value))
                self.select("traffic-dtype", dtype)
                self.select("traffic-op", op)
                box = self.driver.find_element(By.ID, "traffic-residual")
                if box.is_selected() != residual:
                    box.click()
                arguments = ["traffic", "--rows", str(rows), "--cols", str(columns), "--dtype", dtype, "--op", op, "--json", "-"]
                report = json.loads(self.cli(*(arguments + (["--residual"] if residual else []))))
                names = {"eager (Hugging Face formula)": "eager", "PyTorch fused": "pytorch", "FusedNorm (floor)": "fusednorm"}
                for implementation in report["implementations"]:
                    cell = self.driver.find_element(
                        By.CSS_SELECTOR,
                        'td.bytes[data-pass="%s"][data-implementation="%s"]' % (implementation["pass"], names[implementation["name"]]))
                    expect(int(cell.get_attribute("data-bytes")) == implementation["bytes"],
                           "traffic %s %s: page %s != CLI %d" % (implementation["pass"], implementation["name"],
                                                                 cell.get_attribute("data-bytes"), implementation["bytes"]))
                self.checks += 1

            # The launch plans the CLI printed.
            devices = [t.get_attribute("data-device") for t in self.cells("table.plan")]
            expect("cpu" in devices and "h100 (offline)" in devices, "plans shown: %s" % devices)

            if screenshot:
                # Back to the reference matrix, stepped into row 1 (row 0: two blocks, its statistics, two output
                # blocks), for the picture.
                self.driver.get("file://" + page)
                for _ in range(5 + 2):
                    self.click("step")
                self.driver.set_window_size(1200, self.driver.execute_script("return document.body.scrollHeight") + 40)
                self.driver.save_screenshot(screenshot)
        finally:
            self.driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fusednorm", help="the fusednorm binary")
    parser.add_argument("--screenshot", help="save a screenshot of the page here (PNG)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        test = PageTest(os.path.abspath(arguments.fusednorm), folder)
        try:
            test.run(arguments.screenshot)
        except Failure as failure:
            print("FAIL: %s" % failure, file=sys.stderr)
            return 1
    print("explain page: %d comparisons with the CLI passed" % test.checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
