// ipywidgets 8 typesets widget labels by calling MathJax 2's
// MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]). MathJax 3 has no Hub.
// This file gives it one that forwards to MathJax 3's typesetPromise, queueing
// the elements until MathJax has started. It is loaded with `defer` just before
// MathJax itself, after the page's inline MathJax configuration has run.
(function () {
  "use strict";
  var pending = [];

  function flush() {
    var mj = window.MathJax;
    if (!mj || typeof mj.typesetPromise !== "function" || pending.length === 0) {
      return;
    }
    mj.typesetPromise(pending.splice(0)).catch(function (err) {
      console.warn("MathJax could not typeset a widget label:", err);
    });
  }

  function hub() {
    return {
      Queue: function () {
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
            pending.push(job[2]);
          }
        }
        flush();
      },
    };
  }

  var config = window.MathJax || {};
  var startup = config.startup || {};
  var ready = startup.ready;
  startup.ready = function () {
    if (ready) {
      ready();
    } else {
      window.MathJax.startup.defaultReady();
    }
    window.MathJax.Hub = hub();
    flush();
  };
  config.startup = startup;
  config.Hub = hub();
  window.MathJax = config;
})();
