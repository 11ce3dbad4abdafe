/* Emotion timeline of one recording: one Plotly lane per channel, a current-time marker
   that follows the audio player, click on the timeline (or a segment row) to seek.
   Reads the JSON in <script data-role="call-data"> of each [data-role="recording"] section. */
(function () {
  'use strict';

  function fmt(t) {
    if (t === null || t === undefined || isNaN(t)) return '-';
    const m = Math.floor(t / 60), s = t - 60 * m;
    return m + ':' + (s < 10 ? '0' : '') + s.toFixed(1);
  }

  // Whole seconds as m:ss (h:mm:ss from an hour on): the time axis, as the page's durations.
  function clock(t) {
    t = Math.round(t);
    const h = Math.floor(t / 3600), m = Math.floor(t % 3600 / 60), s = t % 60;
    return (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (s < 10 ? '0' : '') + s;
  }

  // Tick positions (s) and m:ss labels for the visible range [lo, hi]: about 6-12 ticks.
  const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  function ticks(lo, hi) {
    const step = STEPS.find(s => (hi - lo) / s <= 12) || STEPS[STEPS.length - 1];
    const vals = [];
    for (let t = Math.ceil(Math.max(0, lo) / step) * step; t <= hi + 1e-9; t += step) vals.push(t);
    return {tickvals: vals, ticktext: vals.map(clock)};
  }

  // Hex colour + confidence -> rgba: stronger colour = more confident (0.25 .. 1 opacity).
  function shade(hex, conf) {
    const n = parseInt(hex.slice(1), 16);
    const a = (conf === null || conf === undefined) ? 1 : 0.25 + 0.75 * Math.max(0, Math.min(1, conf));
    return 'rgba(' + (n >> 16 & 255) + ',' + (n >> 8 & 255) + ',' + (n & 255) + ',' + a.toFixed(3) + ')';
  }

  function traces(data) {
    const groups = {};
    for (const e of data.timeline) {
      const k = e.emotion || '';
      (groups[k] = groups[k] || []).push(e);
    }
    const out = [];
    for (const k of data.labels.concat([''])) {
      const g = groups[k];
      if (!g) continue;
      const speech = k !== '';
      out.push({
        type: 'bar', orientation: 'h', name: speech ? k : 'no speech',
        y: g.map(e => e.channel), base: g.map(e => e.start_s), x: g.map(e => e.end_s - e.start_s),
        customdata: g.map(e => [k || 'no speech', fmt(e.start_s), fmt(e.end_s),
                                e.confidence === null ? '-' : e.confidence.toFixed(2)]),
        hovertemplate: '%{y}: <b>%{customdata[0]}</b> (smoothed)<br>%{customdata[1]} – %{customdata[2]}' +
          (speech ? '<br>confidence %{customdata[3]}' : '') + '<extra></extra>',
        marker: speech
          ? {color: g.map(e => shade(data.colours[k] || '#333333', e.confidence)), line: {width: 0}}
          : {color: data.colours[''], pattern: {shape: '/', fgcolor: '#b0b0b0', size: 6}, line: {width: 0}},
        width: 0.7,
      });
    }
    const turns = data.turns || [];
    if (turns.length) {  // talk spurts: a thin lane under each channel's emotion lane
      out.push({
        type: 'bar', orientation: 'h', name: 'talk', y: turns.map(t => t.channel + ' talk'),
        base: turns.map(t => t.start_s), x: turns.map(t => t.end_s - t.start_s),
        customdata: turns.map(t => t.end_s),
        hovertemplate: '%{y}: %{base:.2f} – %{customdata:.2f} s<extra></extra>',
        marker: {color: '#444444', line: {width: 0}}, width: 0.35,
      });
    }
    return out;
  }

  function lanes(data) {  // each channel, then its talk lane when the call has talk spurts
    if (!(data.turns || []).length) return data.channels;
    return data.channels.flatMap(c => [c, c + ' talk']);
  }

  function renderCall(section, override) {
    const data = Object.assign(JSON.parse(section.querySelector('[data-role="call-data"]').textContent), override || {});
    const plot = section.querySelector('[data-role="timeline"]');
    const audio = section.querySelector('audio');
    const end = Math.max(data.duration_s || 0, ...data.timeline.map(e => e.end_s), 1);
    // episodes: an outline around their stretch of the channel's lane (shapes[0] is the time marker)
    const episodes = (data.episodes || []).filter(e => data.channels.includes(e.channel)).map(e => {
      const i = data.channels.indexOf(e.channel);
      return {type: 'rect', xref: 'x', yref: 'y', x0: e.start_s, x1: e.end_s, y0: i - 0.45, y1: i + 0.45,
              line: {color: '#111111', width: 1.5}, fillcolor: 'rgba(0,0,0,0)', layer: 'above'};
    });
    const layout = {
      // the top margin holds Plotly's toolbar, so that it never covers the first lane
      height: 134 + 55 * Math.max(1, lanes(data).length),
      margin: {l: 80, r: 16, t: 32, b: 40}, barmode: 'overlay', showlegend: false, dragmode: 'zoom',
      xaxis: Object.assign({title: {text: 'time (m:ss)'}, range: [0, end], zeroline: false, showgrid: true,
                            tickmode: 'array'}, ticks(0, end)),
      yaxis: {type: 'category', categoryorder: 'array', categoryarray: lanes(data), autorange: 'reversed',
              fixedrange: true},
      shapes: [{type: 'line', xref: 'x', yref: 'paper', x0: 0, x1: 0, y0: 0, y1: 1,
                line: {color: '#111111', width: 2}}].concat(episodes),
      plot_bgcolor: '#ffffff', paper_bgcolor: '#ffffff', font: {size: 12},
    };
    Plotly.newPlot(plot, traces(data), layout,
                   {displaylogo: false, responsive: true, modeBarButtonsToRemove: ['select2d', 'lasso2d']});
    plot.dataset.episodes = episodes.length;
    plot.on('plotly_relayout', ev => {  // zoom / reset: m:ss ticks for the new range
      if (!('xaxis.range[0]' in ev || 'xaxis.range' in ev || 'xaxis.autorange' in ev)) return;
      const r = plot.layout.xaxis.range, t = ticks(r[0], r[1]);
      Plotly.relayout(plot, {'xaxis.tickvals': t.tickvals, 'xaxis.ticktext': t.ticktext});
    });

    let shown = -1;
    function mark(t) {  // move the current-time marker
      if (Math.abs(t - shown) < 0.02) return;
      shown = t;
      plot.dataset.currentTime = t.toFixed(2);
      Plotly.relayout(plot, {'shapes[0].x0': t, 'shapes[0].x1': t});
    }
    function seek(t) {
      t = Math.max(0, Math.min(end, t));
      mark(t);
      if (audio) {
        audio.currentTime = t;
        if (audio.paused) audio.play().catch(() => {});
      }
    }
    if (audio) {
      let timer = null;
      audio.addEventListener('timeupdate', () => mark(audio.currentTime));
      audio.addEventListener('seeked', () => mark(audio.currentTime));
      audio.addEventListener('play', () => { timer = timer || setInterval(() => mark(audio.currentTime), 100); });
      audio.addEventListener('pause', () => { clearInterval(timer); timer = null; mark(audio.currentTime); });
      audio.addEventListener('ended', () => { clearInterval(timer); timer = null; });
    }
    // A click (not a zoom drag) on the plot area seeks there. Plotly's drag layer
    // (.nsewdrag) covers the plot area, so the x position is read off its box.
    let down = null;
    plot.addEventListener('mousedown', ev => { down = [ev.clientX, ev.clientY]; }, true);
    plot.addEventListener('click', ev => {
      const area = plot.querySelector('.nsewdrag');
      if (!area || !down || Math.hypot(ev.clientX - down[0], ev.clientY - down[1]) > 4) return;
      const box = area.getBoundingClientRect();
      if (ev.clientX < box.left || ev.clientX > box.right || ev.clientY < box.top || ev.clientY > box.bottom) return;
      const r = plot.layout.xaxis.range;
      seek(r[0] + (ev.clientX - box.left) / box.width * (r[1] - r[0]));
    });

    const tbody = section.querySelector('[data-role="segments"] tbody');
    if (tbody) {
      const rows = [];
      for (const s of data.segments) {
        const tr = document.createElement('tr');
        if (!s.is_speech) tr.className = 'nonspeech';
        tr.dataset.start = s.start_s;
        for (let i = 0; i < 7; i++) tr.appendChild(document.createElement('td'));
        const td = tr.children;
        td[0].textContent = s.channel;
        td[1].textContent = s.segment_index;
        td[2].textContent = fmt(s.start_s);
        td[3].textContent = fmt(s.end_s);
        const chip = document.createElement('span');
        chip.className = s.emotion ? 'chip' : 'muted';
        chip.textContent = s.emotion || 'no speech';
        if (s.emotion) chip.style.setProperty('--c', data.colours[s.emotion] || '#333333');
        td[4].appendChild(chip);
        td[5].textContent = s.confidence === null ? '-' : s.confidence.toFixed(2);
        const smooth = document.createElement('span');
        smooth.className = s.emotion_smoothed ? 'chip' : 'muted';
        smooth.textContent = s.emotion_smoothed || (s.emotion ? '-' : 'no speech');
        if (s.emotion_smoothed) smooth.style.setProperty('--c', data.colours[s.emotion_smoothed] || '#333333');
        td[6].appendChild(smooth);
        for (const i of [1, 2, 3, 5]) td[i].className = 'num';
        rows.push(tr);
      }
      tbody.replaceChildren(...rows);
      tbody.addEventListener('click', ev => {
        const tr = ev.target.closest('tr');
        if (tr && tr.dataset.start !== undefined) seek(parseFloat(tr.dataset.start));
      });
    }
    const eps = section.querySelector('[data-role="episodes"] tbody');
    if (eps) {
      eps.addEventListener('click', ev => {
        const tr = ev.target.closest('tr');
        if (tr && tr.dataset.start !== undefined) seek(parseFloat(tr.dataset.start));
      });
    }
    section.dataset.ready = '1';
    return plot;
  }

  window.SER = {renderCall: renderCall};
  document.addEventListener('DOMContentLoaded', () => {
    for (const s of document.querySelectorAll('[data-role="recording"]')) renderCall(s);
  });
})();
