// A search field over the list of a practice's patients (scheduling, adding a participant):
// typing part of a name or user name leaves only the patients that match, and picks the
// one when a single one is left. Without script the plain list still works.
"use strict";
(function () {
  for (const search of document.querySelectorAll("input[data-searches]")) {
    const list = document.getElementById(search.dataset.searches);
    if (!list) continue;
    search.hidden = false;
    const fold = (text) => text.toLocaleLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
    search.addEventListener("input", () => {
      const wanted = fold(search.value.trim());
      const shown = [];
      for (const option of list.options) {
        if (!option.value) continue;  // "(none)" stays
        option.hidden = wanted !== "" && !fold(option.textContent).includes(wanted);
        if (!option.hidden) shown.push(option);
      }
      if (wanted && shown.length === 1) list.value = shown[0].value;
      else if (list.selectedOptions[0] && list.selectedOptions[0].hidden) list.value = "";
    });
  }
})();
