/* Upload page: drop or pick a recording; the page is sent as a normal form post (so it
   works without JavaScript) but, with JavaScript, fetched in place so the result can play
   the chosen file from the browser's memory (the server keeps nothing to play back). */
(function () {
  'use strict';
  document.addEventListener('DOMContentLoaded', () => {
    const form = document.querySelector('[data-role="upload-form"]');
    if (!form) return;
    const input = form.querySelector('input[type=file]');
    const drop = form.querySelector('[data-role="drop"]');
    const status = form.querySelector('[data-role="status"]');
    const result = document.querySelector('[data-role="result"]');
    const label = drop.querySelector('span');

    function chosen() {
      label.textContent = input.files.length ? input.files[0].name : 'Drop a recording here, or click to choose one.';
    }
    input.addEventListener('change', chosen);
    for (const t of ['dragenter', 'dragover']) {
      drop.addEventListener(t, ev => { ev.preventDefault(); drop.classList.add('over'); });
    }
    for (const t of ['dragleave', 'drop']) drop.addEventListener(t, () => drop.classList.remove('over'));
    drop.addEventListener('drop', ev => {
      ev.preventDefault();
      if (ev.dataTransfer.files.length) { input.files = ev.dataTransfer.files; chosen(); }
    });

    form.addEventListener('submit', async ev => {
      if (!input.files.length || !window.fetch) return;
      ev.preventDefault();
      const file = input.files[0];
      const body = new FormData();
      body.append('file', file);
      status.textContent = 'Analysing ' + file.name + ' …';
      status.classList.remove('error');
      result.replaceChildren();
      let resp;
      try {
        resp = await fetch(form.action, {method: 'POST', body: body, headers: {Accept: 'text/html'}});
      } catch (err) {
        status.textContent = 'The upload failed: ' + err;
        status.classList.add('error');
        return;
      }
      const page = new DOMParser().parseFromString(await resp.text(), 'text/html');
      if (!resp.ok) {
        const msg = page.querySelector('.error');
        status.textContent = msg ? msg.textContent : 'The upload failed (HTTP ' + resp.status + ').';
        status.classList.add('error');
        return;
      }
      status.textContent = '';
      result.replaceChildren(...page.querySelector('main').children);
      const section = result.querySelector('[data-role="recording"]');
      if (section) {
        const audio = document.createElement('audio');
        audio.className = 'player';
        audio.controls = true;
        audio.src = URL.createObjectURL(file);  // played from this browser's copy of the file
        section.prepend(audio);
        window.SER.renderCall(section);
      }
    });
  });
})();
