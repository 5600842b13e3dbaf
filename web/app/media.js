// Media around the composer: a preview with an optional caption before a
// file is sent (from the attach button, a drop on the conversation or a
// paste into the composer), and a full-screen viewer for an image with a
// Save link.
import { $, fmtSize, show } from "/web/app/dom.js";

let pending = null; // {file, url, send} while the preview is open

// previewFile opens the preview of file; Send calls send(file, caption),
// where the caption may be "".
export function previewFile(file, send) {
  closePreview();
  const image = /^image\/(png|jpeg|gif|webp)$/.test(file.type);
  pending = { file, send, url: image ? URL.createObjectURL(file) : '' };
  const img = $('attach-image');
  if (image) { img.src = pending.url; img.alt = file.name; } else img.removeAttribute('src');
  show(img, image);
  $('attach-name').textContent = (file.name || 'Pasted image') + ' (' + fmtSize(file.size) + ')';
  $('attach-caption').value = '';
  $('attach-dialog').showModal();
  $('attach-caption').focus();
}

function closePreview() {
  if (!pending) return;
  if (pending.url) URL.revokeObjectURL(pending.url);
  pending = null;
  if ($('attach-dialog').open) $('attach-dialog').close();
}

$('attach-cancel').addEventListener('click', closePreview);
$('attach-dialog').addEventListener('close', closePreview);
$('attach-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const p = pending;
  if (!p) return;
  const caption = $('attach-caption').value.trim();
  closePreview();
  p.send(p.file, caption);
});

// openViewer shows an image full screen; Save downloads it by its name.
export function openViewer(url, name) {
  $('viewer-image').src = url;
  $('viewer-image').alt = name;
  $('viewer-save').href = url;
  $('viewer-save').download = name;
  $('viewer').showModal();
  $('viewer-close').focus();
}
$('viewer-close').addEventListener('click', () => $('viewer').close());

// filesFrom takes the first file a drop or a paste carries, if any.
const firstFile = (dt) => (dt && dt.files && dt.files.length ? dt.files[0] : null);

// acceptFiles makes the conversation take a dropped file and the composer
// a pasted one (text pastes as text); pick(file) previews it.
export function acceptFiles(pick) {
  const pane = $('pane-chat');
  pane.addEventListener('dragover', (e) => {
    if (e.dataTransfer && [...e.dataTransfer.types].includes('Files')) { e.preventDefault(); pane.classList.add('dropping'); }
  });
  pane.addEventListener('dragleave', (e) => { if (e.target === pane || !pane.contains(e.relatedTarget)) pane.classList.remove('dropping'); });
  pane.addEventListener('drop', (e) => {
    pane.classList.remove('dropping');
    const f = firstFile(e.dataTransfer);
    if (!f) return;
    e.preventDefault();
    pick(f);
  });
  $('composer-text').addEventListener('paste', (e) => {
    const f = firstFile(e.clipboardData);
    if (!f) return;
    e.preventDefault();
    pick(f);
  });
}
