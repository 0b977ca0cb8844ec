// Herald portal: draws the charts described by <canvas data-chart="..."> with Chart.js.
// No inline scripts, so the Content-Security-Policy can forbid them.
for (const el of document.querySelectorAll('canvas[data-chart]')) {
  const spec = JSON.parse(el.dataset.chart);
  const dark = window.matchMedia('(prefers-color-scheme: dark)').matches;
  const colors = dark
    ? ['#6ea8ff', '#f0a65a', '#5fd08a', '#ff8a80']
    : ['#1d5fbf', '#a4460b', '#1e7a3c', '#b3261e'];
  const grid = dark ? '#2c3440' : '#dde2e8';
  const text = dark ? '#a3acb8' : '#5a6472';
  // Chart comes from chart.umd.min.js, loaded before this file.
  new Chart(el, {
    type: 'line',
    data: {
      labels: spec.labels.map((t) => new Date(t * 1000).toLocaleString()),
      datasets: spec.series.map((s, i) => ({
        label: s.label,
        data: s.data,
        borderColor: colors[i % colors.length],
        backgroundColor: colors[i % colors.length],
        tension: 0.25,
        pointRadius: spec.labels.length > 40 ? 0 : 3,
        yAxisID: s.axis ?? 'y',
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: 'index', intersect: false },
      plugins: { legend: { labels: { color: text } } },
      scales: {
        x: { ticks: { color: text, maxTicksLimit: 6 }, grid: { color: grid } },
        y: {
          beginAtZero: true,
          ticks: { color: text },
          grid: { color: grid },
          title: { display: !!spec.unit, text: spec.unit ?? '', color: text },
        },
      },
    },
  });
}
