// Draws every `.chart[data-samples]` with uPlot and refreshes it every 5 s.
// No inline script anywhere: the Content-Security-Policy allows only files like this one.
"use strict";
(function () {
  function thresholdPlugin(up, down) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          [[up, "#b3261e"], [down, "#1f7a3a"]].forEach(function (t) {
            if (t[0] === null || isNaN(t[0])) { return; }
            var y = u.valToPos(t[0], "y", true);
            ctx.save();
            ctx.strokeStyle = t[1];
            ctx.setLineDash([6, 4]);
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
            ctx.restore();
          });
        }]
      }
    };
  }

  function toData(body) {
    return [body.at, body.waiting, body.in_flight, body.workers];
  }

  function start(el) {
    var url = el.getAttribute("data-samples");
    var up = el.hasAttribute("data-up") ? parseFloat(el.getAttribute("data-up")) : null;
    var down = el.hasAttribute("data-down") ? parseFloat(el.getAttribute("data-down")) : null;
    var plot = null;
    function refresh() {
      fetch(url, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (body) {
        if (!body) { return; }
        var data = toData(body);
        if (plot === null) {
          plot = new uPlot({
            width: Math.max(320, el.clientWidth || 800),
            height: 240,
            plugins: [thresholdPlugin(up, down)],
            scales: {
              x: { time: true },
              // Room for the threshold lines even when the queue is far below them.
              y: {
                range: function (u, min, max) {
                  var top = Math.max(max || 0, up || 0, down || 0, 1);
                  return [Math.min(0, min || 0), top * 1.1];
                }
              }
            },
            series: [
              {},
              { label: "waiting", stroke: "#1f5fbf", width: 2 },
              { label: "in flight", stroke: "#e08a00", width: 2 },
              { label: "workers", stroke: "#6b3fa0", width: 2 }
            ]
          }, data, el);
        } else {
          plot.setData(data);
        }
        el.setAttribute("data-points", String(body.at.length));
      }).catch(function () { /* the next tick tries again */ });
    }
    refresh();
    setInterval(refresh, 5000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".chart[data-samples]").forEach(start);
  });
})();
