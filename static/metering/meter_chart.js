// Draws the meter chart (R-M7) with the Chart.js that unfold loads on every console page.
// The same numbers are in the table under the canvas, for screen readers and copy-paste.
(function () {
  "use strict";

  // Distinct hues that read on light and dark backgrounds.
  const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed",
                   "#0891b2", "#db2777", "#4d7c0f", "#9333ea", "#475569"];

  function draw() {
    const canvas = document.getElementById("meter-chart");
    const source = document.getElementById("meter-chart-data");
    if (!canvas || !source || typeof Chart === "undefined") {
      return;
    }
    const data = JSON.parse(source.textContent);
    data.datasets.forEach(function (dataset, i) {
      const colour = COLOURS[i % COLOURS.length];
      dataset.borderColor = colour;
      dataset.backgroundColor = colour;
      dataset.pointRadius = data.labels.length > 60 ? 0 : 2;
      dataset.spanGaps = false;
    });
    new Chart(canvas, {
      type: "line",
      data: data,
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: true, position: "bottom" } },
        scales: { y: { beginAtZero: true } },
      },
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
