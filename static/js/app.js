/* Upload page behaviour: file choice, upload with progress, result viewer, downloads.
 * No inline script (CSP script-src 'self'); everything the server renders comes in data-*
 * attributes. Nothing leaves the browser except the POST to /segment. */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("upload-form");
  const fileInput = $("file-input");
  const state = { files: [], result: null, urls: [], lesionSlices: [] };

  /* ---------- formatting ---------- */
  const fmt = (x, digits) => Number(x).toLocaleString("en-US", {
    minimumFractionDigits: digits, maximumFractionDigits: digits });
  const ml = (x) => (x === null || x === undefined ? null : fmt(x, x < 10 ? 2 : 1) + " mL");
  const megabytes = (bytes) => (bytes < 1024 ? bytes + " bytes"
    : bytes < 1024 * 1024 ? fmt(bytes / 1024, 0) + " KB"
    : fmt(bytes / (1024 * 1024), 1) + " MB");
  const duration = (ms) => (ms < 1000 ? fmt(ms, 0) + " ms" : fmt(ms / 1000, 1) + " s");

  function show(el, visible) { el.hidden = !visible; }

  function setText(id, text) { $(id).textContent = text; }

  /* ---------- file selection ---------- */
  function setFiles(fileList) {
    state.files = Array.from(fileList || []);
    const total = state.files.reduce((sum, f) => sum + f.size, 0);
    setText("file-summary", state.files.length === 0 ? "No file chosen"
      : state.files.length === 1 ? state.files[0].name + " (" + megabytes(total) + ")"
        : state.files.length + " files (" + megabytes(total) + ")");
    clearError();
  }

  function setupDropzone() {
    const zone = $("dropzone");
    fileInput.addEventListener("change", () => setFiles(fileInput.files));
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragover");
    }));
    ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.remove("dragover");
    }));
    zone.addEventListener("drop", (event) => setFiles(event.dataTransfer.files));
  }

  /* ---------- validation ---------- */
  function spacingValue() {
    const read = (id) => $(id).value.trim();
    const [row, col, slice] = [read("spacing-row"), read("spacing-col"), read("spacing-slice")];
    if (!row && !col && !slice) return "";
    if (!row || !col) throw new Error("Enter both the pixel row and column spacing (mm), or leave all spacing fields empty.");
    const values = slice ? [row, col, slice] : [row, col];
    values.forEach((v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error("Spacing values must be positive numbers in mm (got \"" + v + "\").");
    });
    return values.join(",");
  }

  function exportWindowValue() {
    const [level, width] = [$("window-level").value.trim(), $("window-width").value.trim()];
    if (!level && !width) return "";
    if (!level || !width) throw new Error("Enter both the window level and width (HU), or leave both empty.");
    if (!Number.isFinite(Number(level))) throw new Error("The window level must be a number in HU (got \"" + level + "\").");
    if (!(Number(width) > 0)) throw new Error("The window width must be a positive number in HU (got \"" + width + "\").");
    return level + "," + width;
  }

  function checkFiles() {
    if (state.files.length === 0) throw new Error("Choose a file first (PNG, JPG, NIfTI, DICOM or a .zip of a DICOM series).");
    const maxMb = Number(form.dataset.maxUploadMb);
    const maxFiles = Number(form.dataset.maxFiles);
    const total = state.files.reduce((sum, f) => sum + f.size, 0);
    if (total > maxMb * 1024 * 1024) throw new Error("The upload is " + megabytes(total) + "; the limit is " + maxMb + " MB.");
    if (state.files.length > maxFiles) throw new Error("Too many files (" + state.files.length + "); the limit is " + maxFiles + ". Upload a .zip of the series instead.");
  }

  /* ---------- messages and progress ---------- */
  function showError(message, detail) {
    const box = $("error");
    box.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = message;
    box.appendChild(strong);
    if (detail) box.appendChild(document.createTextNode(detail));
    show(box, true);
  }

  function clearError() { show($("error"), false); }

  function setBusy(busy) {
    $("submit-btn").disabled = busy;
    show($("progress"), busy);
    if (!busy) show($("spinner"), false);
  }

  function uploadProgress(event) {
    if (!event.lengthComputable) return;
    const percent = Math.round((event.loaded / event.total) * 100);
    $("upload-progress").value = percent;
    setText("progress-text", "Uploading… " + percent + " %");
  }

  function uploadDone() {
    $("upload-progress").removeAttribute("value");   // indeterminate bar while segmenting
    show($("spinner"), true);
    setText("progress-text", "Segmenting… this can take a minute for a large series.");
  }

  /* ---------- request ---------- */
  function buildForm() {
    const data = new FormData();
    state.files.forEach((f) => data.append("file", f, f.name));
    const model = $("model-select").value;
    if (model) data.append("model", model);
    const spacing = spacingValue();
    if (spacing) data.append("spacing", spacing);
    const exportWindow = exportWindowValue();
    if (exportWindow) data.append("export_window", exportWindow);
    return data;
  }

  function parseResponse(xhr) {
    try { return JSON.parse(xhr.responseText); } catch (e) { return null; }
  }

  function onLoad(xhr) {
    setBusy(false);
    const body = parseResponse(xhr);
    if (xhr.status === 200 && body) { showResult(body); return; }
    if (body && body.error) { showError(capitalize(body.error) + " (HTTP " + xhr.status + ")", body.detail ? ": " + body.detail : ""); return; }
    if (xhr.status === 413) { showError("Upload too large (HTTP 413)", ""); return; }
    showError("The server answered HTTP " + xhr.status + ".", " Please try again later.");
  }

  function capitalize(text) { return text.charAt(0).toUpperCase() + text.slice(1); }

  function submit(event) {
    event.preventDefault();
    clearError();
    let data;
    try { checkFiles(); data = buildForm(); } catch (err) { showError(err.message, ""); return; }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", uploadProgress);
    xhr.upload.addEventListener("load", uploadDone);
    xhr.addEventListener("load", () => onLoad(xhr));
    xhr.addEventListener("error", () => { setBusy(false); showError("Network error:", " the server could not be reached."); });
    xhr.addEventListener("timeout", () => { setBusy(false); showError("The request timed out.", " Try a smaller series."); });
    $("upload-progress").value = 0;
    setText("progress-text", "Uploading…");
    setBusy(true);
    xhr.send(data);
  }

  /* ---------- result ---------- */
  function b64Blob(b64, type) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i += 1) bytes[i] = bin.charCodeAt(i);
    return new Blob([bytes], { type: type });
  }

  function setDownload(id, blob, filename) {
    const url = URL.createObjectURL(blob);
    state.urls.push(url);
    const link = $(id);
    link.href = url;
    link.download = filename;
  }

  function setupDownloads(r) {
    state.urls.forEach((url) => URL.revokeObjectURL(url));
    state.urls = [];
    setDownload("dl-mask", b64Blob(r.mask, r.mask_media_type || "application/octet-stream"), r.mask_filename);
    setDownload("dl-overlay", b64Blob(r.overlay, "image/png"), r.overlay_filename || "overlay.png");
    const report = {};
    Object.keys(r).forEach((key) => {
      if (!["overlay", "montage", "slice_overlays", "mask"].includes(key)) report[key] = r[key];
    });
    setDownload("dl-report", new Blob([JSON.stringify(report, null, 2)], { type: "application/json" }),
      r.report_filename || "report.json");
  }

  function spacingText(r) {
    if (!r.spacing_mm) return "unknown (" + (r.spacing_source || "not given") + ")";
    const [slice, row, col] = r.spacing_mm;
    const inPlane = fmt(row, 2) + " × " + fmt(col, 2) + " mm";
    const thickness = r.is_volume ? ", " + fmt(slice, 2) + " mm slices" : "";
    return inPlane + thickness + " (" + r.spacing_source + ")";
  }

  function volumeText(r) {
    if (r.volume_ml !== null && r.volume_ml !== undefined) return ml(r.volume_ml);
    const area = r.slice_areas_mm2 ? r.slice_areas_mm2[r.key_slice] : null;
    if (area !== null && area !== undefined && !r.is_volume) return fmt(area, 0) + " mm² (area)";
    return fmt(r.lesion_voxels, 0) + (r.is_volume ? " voxels" : " pixels") + " (spacing unknown)";
  }

  function slicesText(r) {
    const z = r.slices_with_lesion || [];
    if (!r.is_volume) return z.length ? "this image" : "none";
    if (z.length === 0) return "none of " + r.shape[0];
    return z.length + " of " + r.shape[0] + " (slices " + (z[0] + 1) + "–" + (z[z.length - 1] + 1) + ")";
  }

  function showNumbers(r) {
    setText("result-name", r.name ? "· " + r.name : "");
    setText("stat-volume", volumeText(r));
    setText("stat-abc2", ml(r.abc2_ml) || "–");
    setText("stat-count", String(r.lesion_count));
    setText("stat-largest", ml(r.largest_lesion_ml) || (r.lesions && r.lesions.length ? fmt(r.lesions[0].voxels, 0) + " voxels" : "–"));
    setText("stat-slices", slicesText(r));
    setText("stat-spacing", spacingText(r));
    setText("stat-model", r.model ? r.model.name + " v" + r.model.version + (r.model.runtime ? " (" + r.model.runtime + ")" : "") : "–");
    setText("stat-time", r.timings_ms && r.timings_ms.total !== undefined ? duration(r.timings_ms.total) : "–");
    const list = $("warnings");
    list.replaceChildren(...(r.warnings || []).map((w) => {
      const item = document.createElement("li");
      item.textContent = w;
      return item;
    }));
    show(list, (r.warnings || []).length > 0);
  }

  function showMontage(r) {
    show($("montage-box"), Boolean(r.montage));
    if (r.montage) $("montage-img").src = "data:image/png;base64," + r.montage;
  }

  function showResult(r) {
    state.result = r;
    state.lesionSlices = r.slices_with_lesion || [];
    showNumbers(r);
    setupDownloads(r);
    showMontage(r);
    setupSlider(r);
    show($("result"), true);
    $("result").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  /* ---------- slice viewer ---------- */
  function hasSlices(r) { return r.is_volume && Array.isArray(r.slice_overlays) && r.slice_overlays.length > 1; }

  function setupSlider(r) {
    const slider = $("slice-slider");
    show($("slice-controls"), hasSlices(r));
    if (!hasSlices(r)) {
      $("overlay-img").src = "data:image/png;base64," + r.overlay;
      setText("slice-caption", r.is_volume ? "Key slice " + (r.key_slice + 1) + " of " + r.shape[0] : "");
      return;
    }
    slider.max = String(r.slice_overlays.length - 1);
    slider.value = String(r.key_slice);
    $("lesion-ticks").replaceChildren(...state.lesionSlices.map((z) => {
      const option = document.createElement("option");
      option.value = String(z);
      return option;
    }));
    drawStrip(r);
    showSlice(r.key_slice);
  }

  function drawStrip(r) {
    const canvas = $("lesion-strip");
    const ctx = canvas.getContext("2d");
    const n = r.slice_overlays.length;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--lesion").trim() || "#e0312b";
    state.lesionSlices.forEach((z) => {
      const x0 = Math.floor((z / n) * canvas.width);
      const x1 = Math.max(x0 + 2, Math.floor(((z + 1) / n) * canvas.width));
      ctx.fillRect(x0, 0, x1 - x0, canvas.height);
    });
  }

  function showSlice(z) {
    const r = state.result;
    $("overlay-img").src = "data:image/png;base64," + r.slice_overlays[z];
    const areas = r.slice_areas_mm2 || r.slice_areas_pixels || [];
    const unit = r.slice_areas_mm2 ? " mm²" : " pixels";
    const lesion = state.lesionSlices.includes(z) ? " · hemorrhage " + fmt(areas[z] || 0, 0) + unit : "";
    const key = z === r.key_slice ? " · key slice" : "";
    setText("slice-caption", "Slice " + (z + 1) + " of " + r.slice_overlays.length + lesion + key);
  }

  function jumpLesion(direction) {
    const current = Number($("slice-slider").value);
    const candidates = direction > 0 ? state.lesionSlices.filter((z) => z > current)
      : state.lesionSlices.filter((z) => z < current).reverse();
    if (candidates.length === 0) return;
    $("slice-slider").value = String(candidates[0]);
    showSlice(candidates[0]);
  }

  /* ---------- wiring ---------- */
  setText("api-base", window.location.origin);   // the public address, also behind a proxy
  setupDropzone();
  form.addEventListener("submit", submit);
  $("slice-slider").addEventListener("input", (event) => showSlice(Number(event.target.value)));
  $("prev-lesion").addEventListener("click", () => jumpLesion(-1));
  $("next-lesion").addEventListener("click", () => jumpLesion(1));
}());
