// The camera scanner of the "Link a device" pane (link.js): camera frames
// go through the vendored jsQR (Chromium on Linux has no BarcodeDetector)
// until one holds a link code, which then takes the same path as a pasted
// one.
import { $, show } from "/web/app/dom.js";
import { words } from "/web/app/words.js";

let scan = null;

// scanning reports whether the camera is on.
export const scanning = () => scan !== null;

function loadJsQR() {
  if (window.jsQR) return Promise.resolve(window.jsQR);
  const src = document.querySelector('meta[name="parley-jsqr"]').content;
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = () => resolve(window.jsQR);
    s.onerror = () => reject(new Error('The QR decoder did not load. Paste the link code instead.'));
    document.head.append(s);
  });
}

$('btn-scan').addEventListener('click', async () => {
  $('approve-error').textContent = '';
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $('approve-error').textContent = 'This browser cannot use a camera here. Paste the link code instead.';
    return;
  }
  stopScan();
  try {
    const [decode, stream] = await Promise.all([
      loadJsQR(),
      navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false }),
    ]);
    const video = $('scan-video');
    scan = { stream, timer: 0 };
    video.srcObject = stream;
    show($('scan'));
    show($('btn-scan'), false);
    await video.play();
    const canvas = document.createElement('canvas');
    const g = canvas.getContext('2d', { willReadFrequently: true });
    const tick = () => {
      if (!scan || scan.stream !== stream) return;
      if (video.readyState >= 2 && video.videoWidth) {
        const k = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
        canvas.width = Math.round(video.videoWidth * k);
        canvas.height = Math.round(video.videoHeight * k);
        g.drawImage(video, 0, 0, canvas.width, canvas.height);
        const img = g.getImageData(0, 0, canvas.width, canvas.height);
        const code = decode(img.data, img.width, img.height, { inversionAttempts: 'dontInvert' });
        if (code && code.data.startsWith('parley-link:')) {
          stopScan();
          $('approve-payload').value = code.data;
          $('form-approve').requestSubmit();
          return;
        }
      }
      scan.timer = setTimeout(tick, 120);
    };
    tick();
  } catch (err) {
    stopScan();
    $('approve-error').textContent = err.name === 'NotAllowedError' ? 'The camera was not allowed. Paste the link code instead.'
      : err.name === 'NotFoundError' ? 'No camera was found. Paste the link code instead.' : words(err);
  }
});
$('btn-scan-stop').addEventListener('click', () => { stopScan(); $('btn-scan').focus(); });

export function stopScan() {
  if (scan) {
    clearTimeout(scan.timer);
    scan.stream.getTracks().forEach((tr) => tr.stop());
    scan = null;
  }
  $('scan-video').srcObject = null;
  show($('scan'), false);
  show($('btn-scan'));
}
