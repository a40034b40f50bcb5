// The offline page (templates/offline.html) stands in for the page the person asked
// for, at that page's address: reloading asks the network for it again.
"use strict";
document.getElementById("offline-retry").addEventListener("click", () => location.reload());
window.addEventListener("online", () => location.reload());
