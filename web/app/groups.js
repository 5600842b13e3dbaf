// The group info pane: members, and for admins renaming, adding and
// removing; leaving for members who are no admin.
import { loadGroups, renderChats } from "/web/app/chats.js";
import { $, clear, confirmDialog, h, lowercaseAsTyped, show } from "/web/app/dom.js";
import { openPane } from "/web/app/nav.js";
import { P, ui } from "/web/app/state.js";
import { handleWords, words } from "/web/app/words.js";

export async function openGroup(id) {
  ui.groupOpen = id;
  openPane('group');
  await loadGroups();
  renderGroup();
}

export function renderGroup() {
  const g = ui.groups.get(ui.groupOpen);
  $('group-error').textContent = '';
  const list = $('group-members');
  clear(list);
  if (!g) { $('group-title').textContent = 'Group'; return; }
  $('group-title').textContent = g.name || 'Group';
  const me = ui.st && ui.st.handle;
  for (const m of g.members) {
    const li = h('li', { class: 'member' }, h('span', { text: m + (m === me ? ' (you)' : '') }),
      (g.admins || []).includes(m) ? h('span', { class: 'tag', text: 'Admin' }) : null);
    if (g.admin && m !== me) {
      li.append(h('button', { type: 'button', class: 'danger', 'aria-label': 'Remove ' + m, text: 'Remove', onclick: () => removeMember(g, m) }));
    }
    list.append(li);
  }
  const canChange = !!g.admin && g.member;
  show($('form-group-rename'), canChange);
  // A change arriving while the admin types must not overwrite the field.
  if (canChange && document.activeElement !== $('group-rename-name')) $('group-rename-name').value = g.name || '';
  show($('form-group-add'), canChange);
  show($('btn-group-leave'), g.member && !g.left && !(g.admins || []).includes(me));
  $('group-note').textContent = g.left ? (g.member ? 'You left this group and can no longer send to it. An admin’s device will remove you from the members; you keep the messages already here.'
    : 'You left this group. You keep the messages already here.')
    : !g.member ? 'You are no longer a member of this group.'
      : g.admin ? 'A removed member cannot read anything sent after.' : 'Only admins can change the group.';
}

async function removeMember(g, handle) {
  if (!await confirmDialog('Remove ' + handle + '?', handle + ' will not see messages sent to “' + (g.name || 'the group') + '” from now on.', 'Remove')) return;
  try {
    await P.removeMember(g.id, handle);
    await loadGroups();
    renderGroup();
  } catch (err) {
    $('group-error').textContent = words(err);
  }
}

$('form-group-rename').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('group-error').textContent = '';
  try {
    const name = $('group-rename-name').value.trim();
    await P.renameGroup(ui.groupOpen, name);
    $('group-rename-name').value = name;
    await loadGroups();
    renderGroup();
    renderChats();
    $('announce').textContent = 'Group renamed to ' + name;
  } catch (err) {
    $('group-error').textContent = words(err);
  }
});

$('btn-group-leave').addEventListener('click', async () => {
  const g = ui.groups.get(ui.groupOpen);
  if (!g) return;
  const name = g.name || 'the group';
  if (!await confirmDialog('Leave “' + name + '”?', 'You will no longer be able to send to “' + name + '”, and once an admin’s device has removed you, you will not see new messages. The messages already here stay.', 'Leave')) return;
  $('group-error').textContent = '';
  try {
    await P.leaveGroup(g.id);
    await loadGroups();
    renderGroup();
    $('group-title').focus(); // the button is gone
  } catch (err) {
    $('group-error').textContent = words(err);
  }
});

$('form-group-add').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('group-error').textContent = '';
  const handle = $('group-add-handle').value.trim().toLowerCase();
  try {
    await P.addMember(ui.groupOpen, handle);
    $('group-add-handle').value = '';
    await loadGroups();
    renderGroup();
  } catch (err) {
    $('group-error').textContent = handleWords(err, handle);
  }
});
lowercaseAsTyped($('group-add-handle'));
