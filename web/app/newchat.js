// The "New chat" and "New group" panes.
import { loadChats, loadGroups } from "/web/app/chats.js";
import { openChat } from "/web/app/conversation.js";
import { $, lowercaseAsTyped } from "/web/app/dom.js";
import { openPane } from "/web/app/nav.js";
import { P, ui } from "/web/app/state.js";
import { handleWords, words } from "/web/app/words.js";

$('btn-new-chat').addEventListener('click', () => { openPane('newchat'); $('newchat-handle').focus(); });
$('btn-new-group').addEventListener('click', () => { openPane('newgroup'); $('newgroup-name').focus(); });

lowercaseAsTyped($('newchat-handle'));
lowercaseAsTyped($('newgroup-members'));

$('form-newchat').addEventListener('submit', async (e) => {
  e.preventDefault();
  const handle = $('newchat-handle').value.trim().toLowerCase();
  $('newchat-error').textContent = '';
  if (handle === (ui.st && ui.st.handle)) {
    $('newchat-error').textContent = 'That is you. Your own devices see every chat already.';
    return;
  }
  try {
    await P.safetyNumber(handle); // the account exists and its keys are known
  } catch (err) {
    if (err.code !== 'safety_number_changed') {
      $('newchat-error').textContent = handleWords(err, handle);
      return;
    }
    ui.changed.add(handle);
  }
  $('newchat-handle').value = '';
  openChat(handle);
});

$('form-newgroup').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('newgroup-error').textContent = '';
  const members = $('newgroup-members').value.split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
  try {
    const g = await P.createGroup($('newgroup-name').value.trim(), members);
    $('newgroup-name').value = '';
    $('newgroup-members').value = '';
    await loadGroups();
    await loadChats();
    openChat(g.id);
  } catch (err) {
    $('newgroup-error').textContent = err.code === 'unknown_account'
      ? handleWords(err, await unknownMember(members)) : words(err);
  }
});

// unknownMember finds which of the members has no account (createGroup
// says only that one has none): the first the relay does not know.
async function unknownMember(members) {
  for (const m of members) {
    const code = await P.safetyNumber(m).then(() => '', (e) => e.code);
    if (code === 'unknown_account') return m;
  }
  return members.join(', ');
}
