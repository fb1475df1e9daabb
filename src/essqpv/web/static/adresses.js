/* essqpv dashboard — the address field: suggestions from the offline geocoder (addok over
 * the Base Adresse Nationale), then "dans le QPV …", "à N m du QPV …" or "hors QPV", with the
 * map centred on the point. Shown only when `essqpv geocodeur installer` has been run.
 */
(function () {
  "use strict";

  var bloc = document.getElementById("bloc-adresse");
  if (!bloc || !window.fetch) { return; }
  var champ = document.getElementById("champ-adresse");
  var liste = document.getElementById("suggestions-adresse");
  var reponse = document.getElementById("reponse-adresse");
  var source = document.getElementById("source-adresse");
  var marqueur = null, attente = null, jeton = 0, choix = -1;
  var PRECISIONS = { housenumber: "numéro", street: "voie", locality: "lieu-dit", municipality: "commune" };

  function json(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(function (corps) {
        if (!r.ok) { throw new Error(corps.erreur || ("Erreur " + r.status)); }
        return corps;
      });
    });
  }
  function vider(el) { while (el.firstChild) { el.removeChild(el.firstChild); } }
  function ligne(texte, classe) {
    var p = document.createElement("p");
    if (classe) { p.className = classe; }
    p.textContent = texte;
    return p;
  }
  function fermer() {
    liste.hidden = true; vider(liste); choix = -1;
    champ.setAttribute("aria-expanded", "false");
    champ.removeAttribute("aria-activedescendant");
  }
  function selectionner(i) {
    var items = liste.querySelectorAll("li");
    choix = Math.max(-1, Math.min(i, items.length - 1));
    Array.prototype.forEach.call(items, function (li, k) {
      li.setAttribute("aria-selected", k === choix ? "true" : "false");
    });
    if (choix >= 0) { champ.setAttribute("aria-activedescendant", items[choix].id); }
  }
  function suggerer() {
    var q = champ.value.trim();
    var n = ++jeton;
    if (q.length < 3) { fermer(); return; }
    json("/api/adresses/suggestions?limite=6&q=" + encodeURIComponent(q)).then(function (r) {
      if (n !== jeton) { return; }
      vider(liste);
      r.suggestions.forEach(function (s, k) {
        var li = document.createElement("li");
        li.id = "suggestion-adresse-" + k;
        li.setAttribute("role", "option");
        li.textContent = s.label;
        li.addEventListener("mousedown", function (e) { e.preventDefault(); champ.value = s.label; fermer(); localiser(); });
        liste.appendChild(li);
      });
      liste.hidden = r.suggestions.length === 0;
      liste.dataset.requete = q;  // which text the list answers (typing may outrun the answers)
      champ.setAttribute("aria-expanded", liste.hidden ? "false" : "true");
    }).catch(function () { fermer(); });
  }
  function centrer(r) {
    var carte = window.essqpvCarte && window.essqpvCarte();
    if (!carte || r.lon_ban === null || r.lon_ban === undefined) { return; }
    if (marqueur) { carte.removeLayer(marqueur); }
    marqueur = L.circleMarker([r.lat_ban, r.lon_ban], { radius: 8, color: "#b00020", weight: 3, fillOpacity: 0.6 })
      .bindTooltip(r.adresse_ban).addTo(carte);
    carte.setView([r.lat_ban, r.lon_ban], r.type_ban === "housenumber" ? 16 : 14);
    document.getElementById("carte").dataset.adresse = r.lon_ban + "," + r.lat_ban;
    document.getElementById("carte").dataset.adresseA = String(Date.now());  // see app.js
  }
  function localiser() {
    var q = champ.value.trim();
    clearTimeout(attente);
    jeton++;  // a suggestion request still on its way is dropped
    fermer();
    if (!q) { return; }
    vider(reponse);
    reponse.appendChild(ligne("Recherche…"));
    json("/api/adresses/localiser?adresse=" + encodeURIComponent(q)).then(function (r) {
      vider(reponse);
      if (r.adresse_ban) {
        reponse.appendChild(ligne("Adresse trouvée : " + r.adresse_ban + " (précision : " +
          (PRECISIONS[r.type_ban] || r.type_ban) + ", score " + String(r.score_ban.toFixed(2)).replace(".", ",") +
          (r.methode_ban === "exacte" ? ", écrite comme dans la BAN" : "") + ")"));
      }
      if (r.statut === "localise") {
        var phrase = r.reponse.charAt(0).toUpperCase() + r.reponse.slice(1) + ".";
        reponse.appendChild(ligne(phrase, r.dans_qpv ? "reponse-qpv dans" : "reponse-qpv"));
      } else {
        reponse.appendChild(ligne("Pas de réponse QPV : " + r.remarque, "reponse-qpv a-verifier"));
      }
      reponse.dataset.statut = r.statut;
      source.textContent = r.source_adresses + " Contours : " + r.contours + " (géographie " +
        r.geographie_qpv + "). " + r.avertissement;
      centrer(r);
    }).catch(function (e) {
      vider(reponse);
      reponse.appendChild(ligne(e.message, "message-erreur"));
    });
  }

  json("/api/adresses/etat").then(function (e) {
    if (!e.installe) { return; }
    bloc.hidden = false;
    champ.addEventListener("input", function () {
      clearTimeout(attente);
      attente = setTimeout(suggerer, 150);
    });
    champ.addEventListener("keydown", function (e) {
      var items = liste.querySelectorAll("li");
      if (e.key === "ArrowDown" && items.length) { e.preventDefault(); selectionner(choix + 1); }
      else if (e.key === "ArrowUp" && items.length) { e.preventDefault(); selectionner(choix - 1); }
      else if (e.key === "Escape") { fermer(); }
      else if (e.key === "Enter" && choix >= 0 && items[choix]) { champ.value = items[choix].textContent; }
    });
    champ.addEventListener("blur", function () { setTimeout(fermer, 100); });
    document.getElementById("form-adresse").addEventListener("submit", function (e) {
      e.preventDefault();
      localiser();
    });
  }).catch(function () { /* no geocoder: the field stays hidden */ });
})();
