"""GET / (upload page) and the static assets it uses: offline, CSP-compatible, accessible."""
from __future__ import annotations

from html.parser import HTMLParser

from test_web_api import make_client, make_segmenter


class PageScan(HTMLParser):
    """Collects tags, attributes and inline scripts/styles of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline_script = False
        self.inline_style = False
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag

    def handle_data(self, data):
        if self._in == "script" and data.strip():
            self.inline_script = True
        if self._in == "style" and data.strip():
            self.inline_style = True

    def handle_endtag(self, tag):
        self._in = None

    def find(self, tag, **attrs):
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def scan(html: str) -> PageScan:
    parser = PageScan()
    parser.feed(html)
    return parser


def test_upload_page_has_the_controls_and_disclaimer():
    response = make_client().get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    page = scan(html)
    file_input = page.find("input", type="file")[0]
    assert file_input["name"] == "file" and "multiple" in file_input
    assert {o["value"] for o in page.find("option")} == {"unet", "two_branch"}
    assert page.find("input", type="range", id="slice-slider")
    assert page.find("progress", id="upload-progress")
    assert [a["id"] for a in page.find("a", **{"class": "button"})] == ["dl-mask", "dl-overlay",
                                                                       "dl-report"]
    assert "not a medical device" in html.lower() and "research use only" in html.lower()
    assert page.find("meta", name="viewport")


def test_page_is_csp_clean_and_offline():
    page = scan(make_client().get("/").get_data(as_text=True))
    assert not page.inline_script and not page.inline_style
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for key in ("src", "href"):
            value = attrs.get(key, "")
            assert not value.startswith(("http:", "https:", "//")), value
    scripts = page.find("script")
    assert scripts and all(s.get("src", "").startswith("/static/") for s in scripts)


def test_static_assets_are_served():
    client = make_client()
    js = client.get("/static/js/app.js")
    css = client.get("/static/css/app.css")
    assert js.status_code == 200 and "XMLHttpRequest" in js.get_data(as_text=True)
    assert css.status_code == 200 and "@media" in css.get_data(as_text=True)
    assert "http://" not in css.get_data(as_text=True) and "https://" not in js.get_data(as_text=True)


def test_default_model_is_preselected():
    segmenter = make_segmenter("unet", "two_branch")
    segmenter.default_model = "two_branch"
    page = scan(make_client(segmenter).get("/").get_data(as_text=True))
    selected = [o["value"] for o in page.find("option") if "selected" in o]
    assert selected == ["two_branch"]


def test_page_without_models_disables_segmenting(tmp_path):
    from model.pipeline import Segmenter

    page = scan(make_client(Segmenter(weights_dir=tmp_path)).get("/").get_data(as_text=True))
    assert "disabled" in page.find("button", id="submit-btn")[0]
