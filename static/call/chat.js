// The call's chat panel. Messages go through the signalling socket to everyone in the call
// and are never stored, so the panel shows only what arrived while the page was open.

const $ = (id) => document.getElementById(id);

export class Chat {
  #T;
  #me;

  // `send(text)` passes a message on; `me()` is this participant's id, known after joining.
  constructor(T, { send, me }) {
    this.#T = T;
    this.#me = me;
    $("toggle-chat").addEventListener("click", () => {
      $("chat").hidden = !$("chat").hidden;
      $("toggle-chat").setAttribute("aria-expanded", String(!$("chat").hidden));
      $("toggle-chat").classList.remove("unread");
    });
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("chat-text").value.trim();
      if (text) send(text);
      $("chat-text").value = "";
    });
  }

  show(message) {
    const T = this.#T, mine = message.from === this.#me();
    const item = document.createElement("li");
    const time = new Date(message.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const who = document.createElement("strong");
    who.textContent = `${mine ? T.you : message.name || T.participant} (${time}): `;
    item.append(who, document.createTextNode(message.text));
    $("chat-log").append(item);
    if ($("chat").hidden && !mine) $("toggle-chat").classList.add("unread");
  }
}
