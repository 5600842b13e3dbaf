// The locked view: unlock with the passphrase or the passkey. (Setting the
// lock is in settings.js.)
import { $ } from "/web/app/dom.js";
import { P, render } from "/web/app/state.js";
import { words } from "/web/app/words.js";

$('form-unlock-passphrase').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('unlock-error').textContent = '';
  try {
    await P.unlock({ passphrase: $('unlock-passphrase').value });
    $('unlock-passphrase').value = '';
    await render();
  } catch (err) {
    $('unlock-error').textContent = words(err);
    $('unlock-passphrase').select();
  }
});
$('btn-unlock-passkey').addEventListener('click', async () => {
  $('unlock-error').textContent = '';
  try {
    await P.unlock({ passkey: true });
    await render();
  } catch (err) {
    $('unlock-error').textContent = words(err);
  }
});
